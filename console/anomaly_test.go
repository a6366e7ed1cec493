package console

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/items"
	"recoveryvault/internal/ransomware"
	"recoveryvault/workflows/protocol"
)

// TestAnItemWithAnAnomalyShowsWhereOperatorsLook: the item's page says
// what is suspect and how to clear it; the vault's list has a badge and a
// filter; the front page counts it.
func TestAnItemWithAnAnomalyShowsWhereOperatorsLook(t *testing.T) {
	k := startCluster(t, Options{})
	k.encryptedAtTheNextBackup(t, "vault1", "vm1", 100, 80)
	require.NotNil(t, protocol.Anomaly(k.status("vault1", "vm1").RecoveryPoints))
	require.Eventually(t, func() bool {
		counts, err := items.Count(t.Context(), k.c, "vault1")
		return err == nil && counts[items.Anomaly] == 1
	}, 20*time.Second, 100*time.Millisecond)

	alice := k.operator("alice")
	code, body := alice.get("/vaults/vault1/items/vm1")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Suspect since rp-")
	assert.Contains(t, body, "go run ./starter clear-anomaly --vault vault1 --item vm1")
	assert.Contains(t, body, "(80 to .locked)")

	code, body = alice.get("/vaults/vault1?state=Anomaly")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<span class="badge badge-held">Anomaly</span>`)
	assert.Regexp(t, `Anomaly <span class="count">1</span>`, body)

	code, body = alice.get("/")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `?state=Anomaly"><span class="badge badge-held">1</span>`)
}

// encryptedAtTheNextBackup protects an item of docs documents, backs them
// up, encrypts n of them and backs up again: an item with an anomaly. It
// returns the item's source.
func (k *cluster) encryptedAtTheNextBackup(t *testing.T, vaultID, itemID string, docs, n int) string {
	t.Helper()
	src := k.protect(vaultID, itemID)
	ransomware.WriteDocuments(t, src, docs, 8<<10)
	k.update(vaultID, itemID, protocol.UpdateBackupNow, protocol.Request{RequestedBy: "alice"})
	ransomware.Encrypt(t, src, n)
	k.update(vaultID, itemID, protocol.UpdateBackupNow, protocol.Request{RequestedBy: "alice"})
	return src
}
