package item_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/signing"
	"recoveryvault/internal/signingtest"
	"recoveryvault/internal/testtool"
	. "recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

var signNow = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// signedAs signs input for op at workflowID with key k, at time at.
func signedAs(t *testing.T, k *signingtest.Key, op, workflowID string, input any, at time.Time) []byte {
	t.Helper()
	b, err := signing.Sign(k.Signer, op, workflowID, input, at)
	require.NoError(t, err)
	return b
}

// withField changes one field of a signed payload, signature kept.
func withField(t *testing.T, payload []byte, name string, value any) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(payload, &m))
	m[name] = value
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// signedInNamespace signs input properly but in another SSHSIG namespace.
func signedInNamespace(t *testing.T, k *signingtest.Key, namespace, op, workflowID string, input map[string]any) []byte {
	t.Helper()
	input["nonce"], input["signedAt"] = signing.Nonce(), signNow.Format(time.RFC3339)
	unsigned, _ := json.Marshal(input)
	msg, err := signing.CanonicalMessage(op, workflowID, unsigned)
	require.NoError(t, err)
	sig, err := sshsig.Sign(bytes.NewReader(msg), k.Signer, sshsig.HashSHA512, namespace)
	require.NoError(t, err)
	input["signature"] = string(sshsig.Armor(sig))
	b, _ := json.Marshal(input)
	return b
}

func TestSignaturesAreCheckedAgainstTheKeysListedForTheRequester(t *testing.T) {
	alice, bob, mallory := signingtest.New(t, "alice@example.com"), signingtest.New(t, "bob@example.com"), signingtest.New(t, "mallory@example.com")
	signers := signingtest.AllowedSigners(alice, bob)
	vaultWF := protocol.VaultWorkflowID("v1")
	approve := func(by string) protocol.DecisionRequest {
		return protocol.DecisionRequest{RequestID: "r-1", RequestedBy: by}
	}
	good := signedAs(t, bob, protocol.UpdateApprove, vaultWF, approve("bob@example.com"), signNow)

	cases := []struct {
		name    string
		signers string
		op, wf  string
		input   []byte
		by      string
		now     time.Time
		seen    []signing.SeenNonce
		refusal string
	}{
		{name: "bob's approval, signed by bob", input: good, by: "bob@example.com"},
		{name: "names are compared as people type them", input: signedAs(t, bob, protocol.UpdateApprove, vaultWF, approve("Bob@Example.com "), signNow), by: "Bob@Example.com "},
		{name: "unsigned", input: []byte(`{"requestId":"r-1","requestedBy":"bob@example.com"}`), by: "bob@example.com", refusal: "it is not signed"},
		{name: "alice's key claiming to be bob", input: signedAs(t, alice, protocol.UpdateApprove, vaultWF, approve("bob@example.com"), signNow),
			by: "bob@example.com", refusal: "do not list for bob@example.com; that key is listed for alice@example.com"},
		{name: "an unlisted key claiming to be bob", input: signedAs(t, mallory, protocol.UpdateApprove, vaultWF, approve("bob@example.com"), signNow),
			by: "bob@example.com", refusal: "do not list for bob@example.com"},
		{name: "replayed on another request", input: withField(t, good, "requestId", "r-2"), by: "bob@example.com", refusal: "does not match this request"},
		{name: "replayed as another operation", op: protocol.UpdateReject, input: good, by: "bob@example.com", refusal: "does not match this request"},
		{name: "replayed at another vault", wf: protocol.VaultWorkflowID("v2"), input: good, by: "bob@example.com", refusal: "does not match this request"},
		{name: "a field added after signing", input: withField(t, good, "reason", "because"), by: "bob@example.com", refusal: "does not match this request"},
		{name: "the same nonce again", input: good, by: "bob@example.com", seen: []signing.SeenNonce{{Nonce: nonceOf(t, good), SignedAt: signNow}}, refusal: "nonce has been used already"},
		{name: "signed too long ago", input: good, by: "bob@example.com", now: signNow.Add(signing.SignatureMaxSkew + time.Second), refusal: "more than 10m0s from the workflow's clock"},
		{name: "signed in the future", input: good, by: "bob@example.com", now: signNow.Add(-signing.SignatureMaxSkew - time.Second), refusal: "more than 10m0s"},
		{name: "another namespace", input: signedInNamespace(t, bob, "git", protocol.UpdateApprove, vaultWF, map[string]any{"requestId": "r-1", "requestedBy": "bob@example.com"}),
			by: "bob@example.com", refusal: `signed in namespace "git"`},
		{name: "a key listed for git signatures only", signers: alice.Line() + "\n" + bob.Line(`namespaces="git"`), input: good, by: "bob@example.com", refusal: "do not list for bob@example.com"},
		{name: "a signature that is not one", input: withField(t, good, "signature", "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"), by: "bob@example.com", refusal: "not an armored SSH signature"},
		{name: "no nonce", input: withField(t, good, "nonce", ""), by: "bob@example.com", refusal: `"nonce" must be 8 to 128`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.signers == "" {
				c.signers = signers
			}
			if c.op == "" {
				c.op = protocol.UpdateApprove
			}
			if c.wf == "" {
				c.wf = vaultWF
			}
			if c.now.IsZero() {
				c.now = signNow.Add(time.Minute)
			}
			s, err := signingtest.VerifySigned(c.signers, c.op, c.wf, c.input, c.by, c.now, c.seen)
			if c.refusal != "" {
				assert.ErrorContains(t, err, c.refusal)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, bob.Fingerprint(), s.Fingerprint)
			assert.Equal(t, bob.Fingerprint(), strings.TrimSuffix(strings.TrimPrefix(s.String(), c.by+" ("), ")"))
		})
	}
}

func nonceOf(t *testing.T, payload []byte) string {
	var s signing.Signature
	require.NoError(t, json.Unmarshal(payload, &s))
	return s.Nonce
}

func TestAllowedSignersRefuseWhatTheyDoNotUnderstand(t *testing.T) {
	k := signingtest.New(t, "alice@example.com")
	pub := strings.TrimPrefix(k.Line(), "alice@example.com ")
	keys, err := signing.ParseKeys("# operators\n\n" + k.Line() + " laptop\n\"bob@example.com,carol@example.com\" " + pub + "\n")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	assert.Equal(t, []string{"bob@example.com", "carol@example.com"}, keys[1].Principals)
	assert.Equal(t, k.Fingerprint(), keys[0].Fingerprint)

	for line, refusal := range map[string]string{
		"*@example.com " + pub:                           "is not supported: list each principal",
		"alice@example.com cert-authority " + pub:        `option "cert-authority" is not supported`,
		"alice@example.com valid-before=20300101 " + pub: `option "valid-before" is not supported`,
		"alice@example.com ssh-ed25519 notbase64":        "no public key",
		"system " + pub:                                  "not a person's name",
	} {
		_, err := signing.ParseKeys(line)
		assert.ErrorContains(t, err, refusal, line)
	}
}

// TestCanonicalMessageIsWhatJqPrints: a person signs by hand what jq
// prints, so the workflow must check the same bytes.
func TestCanonicalMessageIsWhatJqPrints(t *testing.T) {
	jq := testtool.Need(t, "jq")
	for _, input := range []string{
		`{}`,
		`{"requestId":"r-1","requestedBy":"bob@example.com","nonce":"n-12345678","signedAt":"2026-12-01T10:00:00Z"}`,
		`{"state":"Disabled","retentionDays":30,"reason":"<tests> & \"quotes\" \\ é ü 日本"}`,
		`{"allowedSigners":"alice ssh-ed25519 AAAA\nbob ssh-ed25519 BBBB\n\ttabbed\r\n","z":[3,{"b":1,"a":null}],"enabled":false}`,
		`{"approvers":["bob","carol"],"approvalWindow":"24h","retentionDays":30.0}`,
	} {
		want, err := signing.CanonicalMessage("setSoftDelete", "vault/v1", []byte(input))
		require.NoError(t, err, input)
		cmd := exec.Command(jq, "-cSj", "--arg", "op", "setSoftDelete", "--arg", "wf", "vault/v1", "{operation:$op, workflowId:$wf, input:(. | del(.signature))}")
		cmd.Stdin = strings.NewReader(input)
		got, err := cmd.Output()
		require.NoError(t, err, input)
		assert.Equal(t, string(want), string(got), input)
	}
	for input, refusal := range map[string]string{
		`{"retentionDays":30.5}`:                      "not a plain whole number",
		`{"retentionDays":-0}`:                        "not a plain whole number",
		`{"retentionDays":9007199254740993}`:          "not a plain whole number",
		`{"requestedBy":"alice","RequestedBy":"bob"}`: "differ only in case",
		`{"a":{"nonce":"x","Nonce":"y"}}`:             "differ only in case",
		`{"reason":"a\u0007bell"}`:                    "control character",
		`[1]`:                                         "not a JSON object",
	} {
		_, err := signing.CanonicalMessage("setSoftDelete", "vault/v1", []byte(input))
		assert.ErrorContains(t, err, refusal, input)
	}
}

// TestOpenSSHAndTheWorkflowsAgreeOnSignatures: a signature by ssh-keygen
// -Y sign verifies in the workflow, and the starter's verifies with
// ssh-keygen -Y verify.
func TestOpenSSHAndTheWorkflowsAgreeOnSignatures(t *testing.T) {
	keygen := testtool.Need(t, "ssh-keygen")
	dir := t.TempDir()
	bob := signingtest.New(t, "bob@example.com")
	keyFile := bob.WriteFile(t, dir, "")
	signersFile := filepath.Join(dir, "allowed_signers")
	require.NoError(t, os.WriteFile(signersFile, []byte(signingtest.AllowedSigners(bob)), 0o644))
	now := time.Now().UTC().Truncate(time.Second)

	unsigned := []byte(`{"requestId":"r-1","requestedBy":"bob@example.com","nonce":"by-hand-0001","signedAt":"` + now.Format(time.RFC3339) + `"}`)
	msg, err := signing.CanonicalMessage(protocol.UpdateApprove, "vault/v1", unsigned)
	require.NoError(t, err)
	msgFile := filepath.Join(dir, "approve.msg")
	require.NoError(t, os.WriteFile(msgFile, msg, 0o644))
	out, err := exec.Command(keygen, "-Y", "sign", "-n", signing.SignatureNamespace, "-f", keyFile, msgFile).CombinedOutput()
	require.NoError(t, err, string(out))
	sig, err := os.ReadFile(msgFile + ".sig")
	require.NoError(t, err)
	signed := withField(t, unsigned, "signature", string(sig))
	s, err := signingtest.VerifySigned(signingtest.AllowedSigners(bob), protocol.UpdateApprove, "vault/v1", signed, "bob@example.com", now, nil)
	require.NoError(t, err, "ssh-keygen's signature verifies in the workflow")
	assert.Equal(t, bob.Fingerprint(), s.Fingerprint)

	ours := signedAs(t, bob, protocol.UpdateApprove, "vault/v1", protocol.DecisionRequest{RequestID: "r-2", RequestedBy: "bob@example.com"}, now)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(ours, &fields))
	msg, err = signing.CanonicalMessage(protocol.UpdateApprove, "vault/v1", ours)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(msgFile+".ours", []byte(fields["signature"].(string)), 0o644))
	cmd := exec.Command(keygen, "-Y", "verify", "-f", signersFile, "-I", "bob@example.com", "-n", signing.SignatureNamespace, "-s", msgFile+".ours")
	cmd.Stdin = bytes.NewReader(msg)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "ssh-keygen -Y verify: %s", out)
	assert.Contains(t, string(out), `Good "recoveryvault" signature for bob@example.com`)
}

// TestTheItemChecksASignedApprovalItself: on a vault that required
// signatures when the delete was requested, Decide refuses an approval
// whose signature does not hold without asking the vault, and asks the
// vault to confirm one that does.
func TestTheItemChecksASignedApprovalItself(t *testing.T) {
	alice, bob := signingtest.New(t, "alice"), signingtest.New(t, "bob")
	item := ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: "/data/vm1", Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
	st := ItemState{ProtectionState: protocol.Protected}
	expires := signNow.Add(day)
	pending := &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings(), Signer: "mallory (SHA256:m)", Approvers: []string{"alice", "bob"},
		ApproverKeys: signingtest.AllowedSigners(alice, bob),
		Pending:      &protocol.MuaRequest{RequestID: "r-1", RequestedBy: "mallory", State: protocol.RequestPending, ExpiresAt: expires}}
	d, err := Decide(st, Event{Op: protocol.OpDelete, By: "mallory"}, Inputs{Item: item, Now: signNow, Vault: pending})
	require.NoError(t, err)
	st = d.State
	require.Len(t, st.AwaitingApproval, 1)
	assert.Equal(t, signingtest.AllowedSigners(alice, bob), st.AwaitingApproval[0].ApproverKeys)

	approval := func(k *signingtest.Key, by, id string, at time.Time) []byte {
		return signedAs(t, k, protocol.UpdateApprove, protocol.VaultWorkflowID("vault1"), protocol.DecisionRequest{RequestID: id, RequestedBy: by}, at)
	}
	now := signNow.Add(time.Minute)
	for _, c := range []struct {
		name     string
		approval []byte
		refusal  string
	}{
		{"no approval at all", nil, "cannot be read"},
		{"alice's key as bob", approval(alice, "bob", "r-1", signNow), "do not list for bob"},
		{"bob's approval of another request", approval(bob, "bob", "r-2", signNow), `the approval is of request "r-2"`},
		{"bob's approval of r-2 relabelled r-1", withField(t, approval(bob, "bob", "r-2", signNow), "requestId", "r-1"), "does not match this request"},
		{"the requester approving", approval(alice, "mallory", "r-1", signNow), "mallory requested r-1 and cannot approve it"},
		{"signed after the request expired", approval(bob, "bob", "r-1", expires), "after request r-1 expired"},
	} {
		_, err := Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1", Input: c.approval}, Inputs{Item: item, Now: now})
		assert.ErrorContains(t, err, c.refusal, c.name)
	}

	good := approval(bob, "bob", "r-1", signNow)
	d, err = Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1", Input: good}, Inputs{Item: item, Now: now})
	require.NoError(t, err)
	assert.Equal(t, AskVault, d.Ask, "the vault confirms: only it knows of a rejection or a revoked key since")
	confirmed := &protocol.VaultAnswer{Settings: protocol.DefaultSoftDeleteSettings(), Window: 14 * day, RequestedBy: "mallory", Signer: "mallory (SHA256:m)",
		Reason: "approved by bob (" + bob.Fingerprint() + ") (request r-1)"}
	d, err = Decide(st, Event{Op: protocol.OpApproved, RequestID: "r-1", Input: good}, Inputs{Item: item, Now: now, Vault: confirmed})
	require.NoError(t, err)
	assert.Equal(t, protocol.SoftDeleted, d.State.ProtectionState)
	assert.Equal(t, "mallory (SHA256:m)", d.Audit.Signer)
	assert.Contains(t, d.Audit.Detail, "approved by bob ("+bob.Fingerprint()+") (request r-1)")

	_, err = Decide(d.State, Event{Op: protocol.OpApproved, RequestID: "r-1", Input: good}, Inputs{Item: item, Now: now})
	assert.ErrorContains(t, err, `awaits no approval of request "r-1"`, "the same approval counts once")

	// One key behind two names: the request's own key cannot approve it.
	sameKey := st.AwaitingApproval[0]
	sameKey.Signer = "mallory (" + bob.Fingerprint() + ")"
	_, err = CheckApproval(sameKey, "vault1", good)
	assert.ErrorContains(t, err, "signed with the key that signed the request")
}
