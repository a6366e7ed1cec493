// Package signingtest makes operators' SSH keys for tests, as ssh-keygen
// would: each test makes its own, none is checked in.
package signingtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"recoveryvault/internal/signing"
)

// Key is one operator's key pair.
type Key struct {
	Principal string
	Signer    ssh.Signer
	private   ed25519.PrivateKey
}

// New makes an Ed25519 key for principal.
func New(t testing.TB, principal string) *Key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Principal: principal, Signer: signer, private: priv}
}

// Line is the key's allowed_signers line, with the given options
// ("namespaces=\"git\""), if any.
func (k *Key) Line(options ...string) string {
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Signer.PublicKey())))
	parts := []string{k.Principal}
	if len(options) > 0 {
		parts = append(parts, strings.Join(options, ","))
	}
	return strings.Join(append(parts, pub), " ")
}

// Fingerprint is the key's SHA256 fingerprint.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Signer.PublicKey()) }

// AllowedSigners is the allowed_signers text listing keys.
func AllowedSigners(keys ...*Key) string {
	var lines []string
	for _, k := range keys {
		lines = append(lines, k.Line())
	}
	return strings.Join(lines, "\n") + "\n"
}

// WriteFile writes the private key in OpenSSH's format into dir, encrypted
// with passphrase unless it is empty, and returns its path.
func (k *Key) WriteFile(t testing.TB, dir, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(k.private, k.Principal)
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(k.private, k.Principal, []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.NewReplacer("@", "_", ".", "_").Replace(k.Principal)+"_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// PrivateKey is the key itself, for an ssh-agent of the test's own.
func (k *Key) PrivateKey() ed25519.PrivateKey { return k.private }

// VerifySigned checks input as a vault does, against allowed signers text.
func VerifySigned(allowedSigners, op, workflowID string, input []byte, by string, now time.Time, seen []signing.SeenNonce) (signing.Signer, error) {
	signers, err := signing.ParseAllowedSigners(allowedSigners)
	if err != nil {
		return signing.Signer{}, err
	}
	s, _, err := signing.VerifySignature(signers, op, workflowID, input, by, signing.WithinSkew(now), seen)
	return s, err
}
