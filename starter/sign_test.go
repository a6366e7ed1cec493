package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/ssh/agent"

	"recoveryvault/internal/items"
	"recoveryvault/internal/signingtest"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// serveAgent runs an ssh-agent holding keys on a socket of the test's own
// (x/crypto's agent, speaking the agent protocol as OpenSSH's does), and
// points SSH_AUTH_SOCK at it.
func serveAgent(t *testing.T, keys ...*signingtest.Key) {
	keyring := agent.NewKeyring()
	for _, k := range keys {
		require.NoError(t, keyring.Add(agent.AddedKey{PrivateKey: k.PrivateKey()}))
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(keyring, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
}

// TestStarterSignsTheWholeMuaFlow drives multi-user authorization on a vault
// that requires signatures, on a real server: the starter signs with a key
// file (prompting for its passphrase) or with ssh-agent; without the right
// key nothing is sent in another's name, and an approval forged with full
// client access is refused.
func TestStarterSignsTheWholeMuaFlow(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	k := startCluster(t)
	dir := t.TempDir()
	alice, bob := signingtest.New(t, "alice@example.com"), signingtest.New(t, "bob@example.com")
	aliceKey, bobKey := alice.WriteFile(t, dir, ""), bob.WriteFile(t, dir, "bob's passphrase")
	signersFile := filepath.Join(dir, "allowed_signers")
	require.NoError(t, os.WriteFile(signersFile, []byte(signingtest.AllowedSigners(alice, bob)), 0o644))

	k.mustJSON("protect", "--vault", "vault8", "--item", "vm1", "--source", writeSource(t))
	require.Eventually(t, func() bool { return k.counts("vault8")[protocol.Protected] == 1 }, 20*time.Second, 100*time.Millisecond)

	out, err := k.starter("vault", "set-allowed-signers", "--vault", "vault8", "--file", signersFile, "--requested-by", "alice@example.com")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Signatures   required on critical operations and approvals, by 2 keys:")
	assert.Contains(t, out, alice.Fingerprint())

	_, err = k.starter("vault", "enable-mua", "--vault", "vault8", "--approvers", "alice@example.com,bob@example.com", "--requested-by", "alice@example.com")
	assert.ErrorContains(t, err, "vault vault8 requires signed operations: give your key with --key FILE, or load it into ssh-agent")
	out, err = k.starter("vault", "enable-mua", "--vault", "vault8", "--approvers", "alice@example.com,bob@example.com", "--requested-by", "alice@example.com", "--key", aliceKey)
	require.NoError(t, err, out)

	_, err = k.starter("delete", "--vault", "vault8", "--item", "vm1", "--requested-by", "mallory", "--key", aliceKey)
	assert.ErrorContains(t, err, "lists no key for mallory")
	out, err = k.starter("delete", "--vault", "vault8", "--item", "vm1", "--requested-by", "alice@example.com", "--reason", "cleanup", "--key", aliceKey)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Pending approval: request r-1 at vault vault8")

	// Full client access without bob's key: an approval in bob's name, sent
	// as any client could, is refused and alerted; the starter will not
	// sign one as bob with alice's key.
	_, err = k.starter("vault", "approve", "--vault", "vault8", "--request", "r-1", "--requested-by", "bob@example.com", "--key", aliceKey)
	assert.ErrorContains(t, err, "none of the keys at hand is listed for bob@example.com")
	var vst vault.VaultStatus
	err = items.Execute(t.Context(), k.c, client.UpdateWorkflowOptions{WorkflowID: protocol.VaultWorkflowID("vault8"), UpdateName: protocol.UpdateApprove,
		Args: []any{protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob@example.com"}}}, &vst)
	assert.ErrorContains(t, err, "approve as bob@example.com refused: it is not signed")
	assert.Equal(t, protocol.Protected, k.mustJSON("status", "--vault", "vault8", "--item", "vm1").ProtectionState)

	// bob approves with his passphrase-protected key.
	out, err = k.starterWithInput("bob's passphrase\n", "vault", "approve", "--vault", "vault8", "--request", "r-1", "--requested-by", "bob@example.com", "--key", bobKey)
	require.NoError(t, err, out)
	assert.Contains(t, out, "Passphrase for "+bobKey)
	assert.Contains(t, out, "Request r-1 (delete the backup data of item vm1): Approved")
	var st item.Status
	require.Eventually(t, func() bool {
		st = k.mustJSON("status", "--vault", "vault8", "--item", "vm1")
		return st.ProtectionState == protocol.SoftDeleted
	}, 20*time.Second, 100*time.Millisecond, "the approval reached the item, which checked it")
	last := st.Audit[len(st.Audit)-1]
	assert.Equal(t, "delete/alice@example.com/accepted/alice@example.com ("+alice.Fingerprint()+")", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome+"/"+last.Signer)
	assert.Contains(t, last.Detail, "reason: cleanup; approved by bob@example.com ("+bob.Fingerprint()+") (request r-1)")
	require.Eventually(t, func() bool { return k.counts("vault8")[protocol.SoftDeleted] == 1 }, 20*time.Second, 100*time.Millisecond,
		"visibility shows the item soft-deleted")
	// The terminal's audit names keys short enough to read: SHA256 and
	// eight characters, not the whole fingerprint.
	out, err = k.starter("status", "--vault", "vault8", "--item", "vm1")
	require.NoError(t, err, out)
	assert.Contains(t, out, "alice@example.com ("+alice.Fingerprint()[:len("SHA256:")+8]+"…)")
	for _, line := range strings.Split(out[strings.Index(out, "Audit ("):], "\n") {
		if i := strings.Index(line, "DETAIL"); i >= 0 {
			assert.Less(t, i, 120, "the audit's columns fit a terminal before the detail: %q", line)
		}
	}

	// With the key in ssh-agent, no --key is needed.
	serveAgent(t, alice)
	out, err = k.starter("vault", "set-soft-delete", "--vault", "vault8", "--state", "Disabled", "--requested-by", "alice@example.com")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Request r-2 (set soft delete to Disabled, 14 days): PendingApproval")
	out, err = k.starter("vault", "status", "--vault", "vault8")
	require.NoError(t, err, out)
	assert.Regexp(t, `setSoftDelete +alice@example.com +alice@example.com \(SHA256:`, out, "the audit shows the key that signed")
}
