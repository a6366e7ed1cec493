package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/testtool"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// signScript is docs/vaults.md's way of signing a request by hand: jq for the
// canonical message, ssh-keygen -Y sign for the signature.
const signScript = `
# sign OPERATION WORKFLOW_ID KEY REQUEST.json: prints the request, signed.
sign() {
  jq --arg nonce "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" --arg at "$(date -u +%FT%TZ)" \
     '. + {nonce: $nonce, signedAt: $at}' "$4" > "$4.unsigned"
  jq -cSj --arg op "$1" --arg wf "$2" '{operation: $op, workflowId: $wf, input: .}' "$4.unsigned" > "$4.msg"
  rm -f "$4.msg.sig"
  ssh-keygen -q -Y sign -n recoveryvault -f "$3" "$4.msg"
  jq --rawfile sig "$4.msg.sig" '. + {signature: $sig}' "$4.unsigned"
}
`

// TestSignedApprovalByHandWithSshKeygenAndTheTemporalCLI runs docs/vaults.md's
// signed multi-user authorization with stock tools only: keys made by
// ssh-keygen, requests signed with jq and ssh-keygen -Y sign, sent with the
// Temporal CLI, against dev mode.
func TestSignedApprovalByHandWithSshKeygenAndTheTemporalCLI(t *testing.T) {
	cli := temporalCLI(t)
	for _, name := range []string{"bash", "jq", "ssh-keygen"} {
		testtool.Need(t, name)
	}
	cfg := config{dataDir: t.TempDir(), port: freePort(t)}
	startDevMode(t, cfg)
	work := t.TempDir()
	sh := func(script string) (string, error) {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", signScript+script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(),
			"PATH="+filepath.Dir(cli)+string(os.PathListSeparator)+os.Getenv("PATH"),
			fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", cfg.port), "TEMPORAL_NAMESPACE=default",
			// No profile of the machine's user may redirect the CLI elsewhere.
			"TEMPORAL_CONFIG_FILE="+filepath.Join(work, "none.toml"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustSh := func(script string) string {
		t.Helper()
		out, err := sh(script)
		require.NoError(t, err, "%s\n%s", script, out)
		return out
	}
	itemWF := protocol.WorkflowID("signed", "vm1")
	itemStatus := func() item.Status {
		var q struct {
			QueryResult []item.Status `json:"queryResult"`
		}
		out := mustSh("temporal workflow query --workflow-id " + itemWF + " --name status -o json")
		require.NoError(t, json.Unmarshal([]byte(out), &q), out)
		require.Len(t, q.QueryResult, 1)
		return q.QueryResult[0]
	}

	mustSh(`
ssh-keygen -q -t ed25519 -N '' -C alice -f alice
ssh-keygen -q -t ed25519 -N '' -C bob -f bob
printf 'alice@example.com %s\nbob@example.com %s\n' "$(cat alice.pub)" "$(cat bob.pub)" > allowed_signers`)
	mustSh(fmt.Sprintf(`temporal workflow start --task-queue backup --type BackupItem --workflow-id %s \
  --input '{"vaultId":"signed","itemId":"vm1","sourcePath":%q,"policy":{"frequency":"24h","retentionDays":30}}'`, itemWF, writeItemSource(t)))
	require.Eventually(t, func() bool { return len(itemStatus().RecoveryPoints) == 1 }, 30*time.Second, 200*time.Millisecond)

	mustSh(`
temporal workflow update execute --workflow-id vault/signed --name setAllowedSigners \
  --input "$(jq -n --rawfile s allowed_signers '{allowedSigners: $s, requestedBy: "alice@example.com"}')"
echo '{"approvers": ["alice@example.com", "bob@example.com"], "requestedBy": "alice@example.com"}' > mua.json
sign enableMua vault/signed alice mua.json > mua.signed.json
temporal workflow update execute --workflow-id vault/signed --name enableMua --input-file mua.signed.json
echo '{"requestedBy": "alice@example.com", "reason": "decommissioned"}' > delete.json
sign delete backup-item/signed/vm1 alice delete.json > delete.signed.json
temporal workflow signal --workflow-id backup-item/signed/vm1 --name delete --input-file delete.signed.json`)
	require.Eventually(t, func() bool {
		last := itemStatus().Audit
		return last[len(last)-1].Outcome == protocol.OutcomePending
	}, 30*time.Second, 200*time.Millisecond, "the signed delete waits for approval")

	// Anyone with the CLI but not bob's key: refused, and nothing changes.
	out, err := sh(`temporal workflow update execute --workflow-id vault/signed --name approve --input '{"requestId": "r-1", "requestedBy": "bob@example.com"}'`)
	assert.Error(t, err)
	assert.Contains(t, out, "approve as bob@example.com refused: it is not signed")
	out, err = sh(`
echo '{"requestId": "r-1", "requestedBy": "bob@example.com"}' > forged.json
sign approve vault/signed alice forged.json > forged.signed.json
temporal workflow update execute --workflow-id vault/signed --name approve --input-file forged.signed.json`)
	assert.Error(t, err)
	assert.Contains(t, out, "which the allowed signers do not list for bob@example.com; that key is listed for alice@example.com")
	assert.Equal(t, protocol.Protected, itemStatus().ProtectionState)

	mustSh(`
echo '{"requestId": "r-1", "requestedBy": "bob@example.com"}' > approve.json
sign approve vault/signed bob approve.json > approve.signed.json
temporal workflow update execute --workflow-id vault/signed --name approve --input-file approve.signed.json`)
	var st item.Status
	require.Eventually(t, func() bool { st = itemStatus(); return st.ProtectionState == protocol.SoftDeleted }, 30*time.Second, 200*time.Millisecond)
	last := st.Audit[len(st.Audit)-1]
	assert.Equal(t, "delete/alice@example.com/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
	assert.True(t, strings.HasPrefix(last.Signer, "alice@example.com (SHA256:"), last.Signer)
	assert.Contains(t, last.Detail, "approved by bob@example.com (SHA256:")

	out, err = sh(`temporal workflow update execute --workflow-id vault/signed --name approve --input-file approve.signed.json`)
	assert.Error(t, err, "the same signed approval counts once")
	assert.Contains(t, out, "nonce has been used already")
}
