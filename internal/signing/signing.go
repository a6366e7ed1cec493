// Package signing signs an operator's requests to a vault that requires
// signatures: with a key in ssh-agent or a key file, over the canonical
// message the workflows check (CanonicalMessage).
package signing

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Sign returns input, a JSON object, with a fresh nonce, the time now and
// the signature of signer added: the payload of operation op sent to
// workflowID on a vault that requires signatures.
func Sign(signer ssh.Signer, op, workflowID string, input any, now time.Time) (json.RawMessage, error) {
	fields, err := object(input)
	if err != nil {
		return nil, err
	}
	fields["nonce"] = Nonce()
	fields["signedAt"] = now.UTC().Format(time.RFC3339)
	unsigned, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	msg, err := CanonicalMessage(op, workflowID, unsigned)
	if err != nil {
		return nil, err
	}
	sig, err := sshsig.Sign(bytes.NewReader(msg), signer, sshsig.HashSHA512, SignatureNamespace)
	if err != nil {
		return nil, fmt.Errorf("sign %s with key %s: %w", op, ssh.FingerprintSHA256(signer.PublicKey()), err)
	}
	fields["signature"] = string(sshsig.Armor(sig))
	return json.Marshal(fields)
}

// object turns a request struct (or JSON text) into its fields.
func object(input any) (map[string]any, error) {
	data, ok := input.(json.RawMessage)
	if !ok {
		var err error
		if data, err = json.Marshal(input); err != nil {
			return nil, err
		}
	}
	fields := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("a signed request must be a JSON object: %w", err)
	}
	return fields, nil
}

// Nonce is 128 random bits, URL-safe.
func Nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PassphraseFunc asks for the passphrase of the key file named.
type PassphraseFunc func(path string) ([]byte, error)

// LoadKey reads an OpenSSH private key file, asking for its passphrase
// when it has one.
func LoadKey(path string, passphrase PassphraseFunc) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the signing key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == nil {
			return nil, fmt.Errorf("key %s has a passphrase and there is no terminal to ask it on: add the key to ssh-agent instead", path)
		}
		pass, perr := passphrase(path)
		if perr != nil {
			return nil, perr
		}
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s cannot be read: %w (give an OpenSSH private key, as ssh-keygen writes it)", path, err)
	}
	return signer, nil
}

// Agent connects to the ssh-agent at SSH_AUTH_SOCK and lists its keys.
// Close the returned connection when done signing.
func Agent() ([]ssh.Signer, func(), error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("no ssh-agent (SSH_AUTH_SOCK is not set)")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	return signers, func() { conn.Close() }, nil
}

// Choose picks, among signers, the key the vault lists for by.
func Choose(signers []ssh.Signer, listed []SignerKey, by, vaultID string) (ssh.Signer, error) {
	var theirs []string
	for _, k := range listed {
		for _, p := range k.Principals {
			if SameIdentity(p, by) {
				theirs = append(theirs, k.Fingerprint)
			}
		}
	}
	if len(theirs) == 0 {
		return nil, fmt.Errorf("vault %s requires signatures and lists no key for %s: sign as a person it lists (--requested-by), or have that key added with setAllowedSigners", vaultID, by)
	}
	for _, s := range signers {
		fp := ssh.FingerprintSHA256(s.PublicKey())
		for _, f := range theirs {
			if f == fp {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("vault %s requires signatures, and none of the keys at hand is listed for %s (%s): give the key with --key, or add it to ssh-agent with ssh-add",
		vaultID, by, strings.Join(theirs, ", "))
}
