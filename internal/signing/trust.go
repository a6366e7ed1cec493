package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hiddeco/sshsig"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/crypto/ssh"
)

// SignersDigest names a set of allowed signers, whatever their order and
// comments: what an item remembers of them.
func SignersDigest(text string) string {
	signers, err := ParseAllowedSigners(text)
	if err != nil || len(signers) == 0 {
		return ""
	}
	lines := make([]string, len(signers))
	for i, s := range signers {
		lines[i] = strings.Join(s.Principals, ",") + " " + s.Fingerprint
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:12])
}

// Signed operations. A vault that holds allowed signers accepts a critical
// operation only with an SSH signature, by a key listed for the person the
// request names, over the request itself. What is signed is the canonical
// message (CanonicalMessage): the operation, the workflow it is sent to
// and every field of its input but the signature, the nonce and the time
// among them. Threats countered:
//
//   - anyone who can reach the namespace sending a critical operation, or an
//     approval, in another person's name (verifySignature: the key must be
//     listed for requestedBy);
//   - a signature captured from one request used for another (the message
//     binds the operation, the workflow and every field);
//   - the same signed request sent again (its nonce is remembered while its
//     time is within SignatureMaxSkew, and refused outside it);
//   - a signature made for another purpose with the same key (the SSHSIG
//     namespace must be recoveryvault);
//   - an approval forged on its way to the item (checkApproval: the item
//     checks the approver's signature itself, against the keys its vault
//     held when the delete was requested, before it asks the vault anything);
//   - one person holding the keys of two approvers' names (the same key
//     may not sign a request and its approval, nor be listed for two
//     approvers).

// SignatureNamespace is the SSHSIG namespace of every signed request.
const SignatureNamespace = "recoveryvault"

// SignatureMaxSkew is how far a request's signedAt may be from the
// workflow's clock.
const SignatureMaxSkew = 10 * time.Minute

// Bounds of what a vault accepts as allowed signers and remembers of them.
const (
	maxAllowedSignersBytes = 16 << 10
	maxAllowedSigners      = 100
	// maxNonces bounds the signed requests a vault accepts within twice
	// the skew: only holders of listed keys can add to them.
	maxNonces = 1000
)

// Unsigned is the signer of an operation sent without a signature to a
// vault that does not require one, in the audit and the alerts.
const Unsigned = "unsigned"

// Signature are the fields a signed request adds to its input.
type Signature struct {
	// Signature is the armored SSHSIG ("-----BEGIN SSH SIGNATURE-----").
	Signature string `json:"signature,omitempty"`
	// Nonce is any string the signer has not used before, 8 to 128 characters.
	Nonce string `json:"nonce,omitempty"`
	// SignedAt is when it was signed, in RFC 3339.
	SignedAt string `json:"signedAt,omitempty"`
}

// SeenNonce is a signed request's nonce, remembered while its time is within
// the skew, so that the same request counts once.
type SeenNonce struct {
	Nonce    string    `json:"nonce"`
	SignedAt time.Time `json:"signedAt"`
}

// Signer is who signed a request, as the audit shows it.
type Signer struct {
	Principal   string `json:"principal"`
	Fingerprint string `json:"fingerprint"`
}

func (s Signer) String() string { return s.Principal + " (" + s.Fingerprint + ")" }

// SignerKey is one line of a vault's allowed signers, as its status shows it.
type SignerKey struct {
	Principals  []string `json:"principals"`
	KeyType     string   `json:"keyType"`
	Fingerprint string   `json:"fingerprint"`
	// Namespaces, when set, are the only namespaces the key may sign in.
	Namespaces []string `json:"namespaces,omitempty"`
}

// AllowedSigner is one parsed line of an allowed_signers file.
type AllowedSigner struct {
	SignerKey
	key  ssh.PublicKey
	line string
}

// ParseKeys reads OpenSSH's allowed_signers format, one key per
// line: "principals [options] keytype base64 [comment]", as git and
// ssh-keygen -Y verify use it. Of the options, namespaces= is honoured;
// certificate authorities, validity times and principal patterns are
// refused in a sentence rather than half understood.
func ParseKeys(text string) ([]SignerKey, error) {
	signers, err := ParseAllowedSigners(text)
	keys := make([]SignerKey, len(signers))
	for i, s := range signers {
		keys[i] = s.SignerKey
	}
	return keys, err
}

func ParseAllowedSigners(text string) ([]AllowedSigner, error) {
	if len(text) > maxAllowedSignersBytes {
		return nil, fmt.Errorf("allowed signers of %d bytes are too many: at most %d", len(text), maxAllowedSignersBytes)
	}
	var out []AllowedSigner
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSignerLine(line)
		if err != nil {
			return nil, fmt.Errorf("allowed signers line %d: %w", n+1, err)
		}
		out = append(out, s)
	}
	if len(out) > maxAllowedSigners {
		return nil, fmt.Errorf("%d allowed signers are too many: list at most %d keys", len(out), maxAllowedSigners)
	}
	return out, nil
}

func parseSignerLine(line string) (AllowedSigner, error) {
	var principals, rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return AllowedSigner{}, errors.New("the quoted principals have no closing quote")
		}
		principals, rest = line[1:end+1], line[end+2:]
	} else {
		principals, rest, _ = strings.Cut(line, " ")
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err != nil {
		return AllowedSigner{}, fmt.Errorf("no public key after the principals (%v): write \"alice@example.com ssh-ed25519 AAAA...\"", err)
	}
	s := AllowedSigner{key: key, line: line, SignerKey: SignerKey{KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return AllowedSigner{}, errors.New("certificates are not supported: list each operator's public key")
	}
	for _, p := range strings.Split(principals, ",") {
		p = strings.TrimSpace(p)
		switch {
		case strings.ContainsAny(p, "*?!"):
			return AllowedSigner{}, fmt.Errorf("principal pattern %q is not supported: list each principal by name", p)
		case ReservedName(p):
			return AllowedSigner{}, fmt.Errorf("principal %q is not a person's name", p)
		}
		s.Principals = append(s.Principals, p)
	}
	for _, o := range options {
		name, value, _ := strings.Cut(o, "=")
		switch strings.ToLower(name) {
		case "namespaces":
			for _, ns := range strings.Split(strings.Trim(value, `"`), ",") {
				s.Namespaces = append(s.Namespaces, strings.TrimSpace(ns))
			}
		default:
			return AllowedSigner{}, fmt.Errorf("option %q is not supported: only namespaces= is", name)
		}
	}
	return s, nil
}

// ListedFor is true when the key is listed for principal by and may sign
// in SignatureNamespace.
func (s AllowedSigner) ListedFor(by string) bool {
	if len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, SignatureNamespace) {
		return false
	}
	return slices.ContainsFunc(s.Principals, func(p string) bool { return SameIdentity(p, by) })
}

// SignersFor keeps the lines of the allowed signers that are listed for
// any of names: what an item needs to check an approval.
func SignersFor(signers []AllowedSigner, names []string) string {
	var lines []string
	for _, s := range signers {
		if slices.ContainsFunc(names, s.ListedFor) {
			lines = append(lines, s.line)
		}
	}
	return strings.Join(lines, "\n")
}

// UnlistedApprovers are the approvers with no key among signers: under
// signatures they could never approve.
func UnlistedApprovers(signers []AllowedSigner, approvers []string) []string {
	var out []string
	for _, a := range approvers {
		if !slices.ContainsFunc(signers, func(s AllowedSigner) bool { return s.ListedFor(a) }) {
			out = append(out, a)
		}
	}
	return out
}

// CanonicalMessage is what a signature signs for operation op sent to
// workflowID with JSON object input (nil for none): compact JSON, keys
// sorted, {"input": <input without "signature">, "operation": op,
// "workflowId": workflowID}. It is what jq -cSj prints for that object, so
// a person can sign by hand with jq and ssh-keygen -Y sign. To keep the
// two byte for byte equal, numbers must be whole and strings may hold no
// control characters but tab, newline and carriage return.
func CanonicalMessage(op, workflowID string, input []byte) ([]byte, error) {
	fields := map[string]any{}
	if trimmed := bytes.TrimSpace(input); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return nil, fmt.Errorf("the input is not a JSON object: %v", err)
		}
	}
	delete(fields, "signature")
	canon, err := canonicalValue(fields)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"operation": op, "workflowId": workflowID, "input": canon}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// canonicalValue checks a decoded JSON value for what would print
// differently in Go and jq, and writes whole numbers plainly.
func canonicalValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		// In key order, so the first problem found is always the same.
		keys := workflow.DeterministicKeys(v)
		for i, k := range keys {
			if err := canonicalString(k); err != nil {
				return nil, err
			}
			// Go reads field names regardless of case: two that differ only
			// in case would sign one thing and mean another.
			for _, other := range keys[:i] {
				if strings.EqualFold(k, other) {
					return nil, fmt.Errorf("fields %q and %q of a signed request differ only in case: name each field once", other, k)
				}
			}
			c, err := canonicalValue(v[k])
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := canonicalValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case json.Number:
		// jq holds numbers as doubles: whole ones up to 2^53 print alike.
		f, err := strconv.ParseFloat(v.String(), 64)
		if n, ierr := strconv.ParseInt(v.String(), 10, 64); ierr == nil && (n > 1<<53 || n < -(1<<53)) {
			f = math.Inf(1)
		}
		if err != nil || math.IsInf(f, 0) || f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) || (f == 0 && strings.HasPrefix(v.String(), "-")) {
			return nil, fmt.Errorf("number %s in a signed request is not a plain whole number: write whole numbers up to 2^53 plainly", v)
		}
		return json.Number(strconv.FormatInt(int64(f), 10)), nil
	case string:
		return v, canonicalString(v)
	}
	return v, nil
}

func canonicalString(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("a signed request's text must be UTF-8")
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("a signed request's text may not hold the control character %U", r)
		}
	}
	return nil
}

// VerifySignature checks that input, sent as operation op to workflowID,
// is signed by a key listed for by, in SignatureNamespace, at a time fresh
// accepts, with a nonce not in seen. It returns the signer and the nonce to
// remember. Every refusal says what to do.
func VerifySignature(signers []AllowedSigner, op, workflowID string, input []byte, by string, fresh func(time.Time) error, seen []SeenNonce) (Signer, SeenNonce, error) {
	var sig Signature
	// Only the signature's fields: the rest is the operation's to read.
	_ = json.Unmarshal(input, &sig)
	switch {
	case sig.Signature == "":
		return Signer{}, SeenNonce{}, errors.New(`it is not signed, and this vault requires signatures: sign it with the starter (--key, or a key in ssh-agent), or by hand with ssh-keygen -Y sign -n recoveryvault (see docs/vaults.md)`)
	case len(sig.Nonce) < 8 || len(sig.Nonce) > 128:
		return Signer{}, SeenNonce{}, errors.New(`its "nonce" must be 8 to 128 characters never used before: sign it again with a fresh nonce`)
	case ReservedName(by):
		return Signer{}, SeenNonce{}, errors.New("a signed request must name its signer in requestedBy")
	}
	at, err := time.Parse(time.RFC3339, sig.SignedAt)
	if err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf(`its "signedAt" %q is not an RFC 3339 time such as "2026-12-01T10:00:00Z"`, sig.SignedAt)
	}
	if err := fresh(at); err != nil {
		return Signer{}, SeenNonce{}, err
	}
	if slices.ContainsFunc(seen, func(n SeenNonce) bool { return n.Nonce == sig.Nonce }) {
		return Signer{}, SeenNonce{}, errors.New("its nonce has been used already: a signed request counts once; sign it again with a fresh nonce")
	}
	if len(seen) >= maxNonces {
		return Signer{}, SeenNonce{}, &BusyError{fmt.Sprintf("%d signed requests in the last %s are all this vault takes: try again later", maxNonces, 2*SignatureMaxSkew)}
	}
	parsed, err := sshsig.Unarmor([]byte(sig.Signature))
	if err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf(`its "signature" is not an armored SSH signature (%v): give the text ssh-keygen -Y sign writes`, err)
	}
	if parsed.Namespace != SignatureNamespace {
		return Signer{}, SeenNonce{}, fmt.Errorf("it is signed in namespace %q, not %q: sign with ssh-keygen -Y sign -n %s", parsed.Namespace, SignatureNamespace, SignatureNamespace)
	}
	fingerprint := ssh.FingerprintSHA256(parsed.PublicKey)
	i := slices.IndexFunc(signers, func(s AllowedSigner) bool { return s.Fingerprint == fingerprint && s.ListedFor(by) })
	if i < 0 {
		owners := ""
		for _, s := range signers {
			if s.Fingerprint == fingerprint {
				owners = "; that key is listed for " + strings.Join(s.Principals, ", ")
			}
		}
		return Signer{}, SeenNonce{}, fmt.Errorf("it is signed with key %s, which the allowed signers do not list for %s%s", fingerprint, by, owners)
	}
	msg, err := CanonicalMessage(op, workflowID, input)
	if err != nil {
		return Signer{}, SeenNonce{}, err
	}
	if err := parsed.HashAlgorithm.Supported(); err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf("its hash algorithm: %v", err)
	}
	if err := sshsig.Verify(bytes.NewReader(msg), parsed, signers[i].key, parsed.HashAlgorithm, SignatureNamespace); err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf("its signature does not match this request (%v): the operation, the workflow ID and every field are signed; sign exactly what is sent", err)
	}
	return Signer{Principal: by, Fingerprint: fingerprint}, SeenNonce{Nonce: sig.Nonce, SignedAt: at}, nil
}

// WithinSkew accepts a signature made within SignatureMaxSkew of now.
func WithinSkew(now time.Time) func(time.Time) error {
	return func(at time.Time) error {
		if d := now.Sub(at); d > SignatureMaxSkew || d < -SignatureMaxSkew {
			return fmt.Errorf("it was signed at %s, more than %s from the workflow's clock (%s): sign it again now",
				at.UTC().Format(time.RFC3339), SignatureMaxSkew, now.UTC().Format(time.RFC3339))
		}
		return nil
	}
}

// BusyError is a refusal for a cause that passes (the vault has taken all
// the signed requests it remembers for now): an item's delete waits and
// asks again instead of being refused.
type BusyError struct{ msg string }

func (e *BusyError) Error() string { return e.msg }

// FreshNonces are the nonces still within the skew of now.
func FreshNonces(seen []SeenNonce, now time.Time) []SeenNonce {
	return slices.DeleteFunc(slices.Clone(seen), func(n SeenNonce) bool { return now.Sub(n.SignedAt) > SignatureMaxSkew })
}

// FingerprintOf is the key fingerprint in a signer's text
// ("alice (SHA256:...)"), or "" for an unsigned one.
func FingerprintOf(signer string) string {
	i := strings.LastIndex(signer, "(SHA256:")
	if i < 0 || !strings.HasSuffix(signer, ")") {
		return ""
	}
	return signer[i+1 : len(signer)-1]
}
