package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/items"
	"recoveryvault/internal/ransomware"
	"recoveryvault/workflows/protocol"
)

// TestASourceEncryptedInPlaceIsCaughtAtTheNextBackup runs on a real
// server, end to end: documents encrypted under a new extension, the
// originals deleted and a note left, are caught by the next backup; the
// item shows in the lists, its delete waits, and a clear with a reason
// lets it go on.
func TestASourceEncryptedInPlaceIsCaughtAtTheNextBackup(t *testing.T) {
	k := startCluster(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 100, 16<<10)
	item := []string{"--vault", "vault1", "--item", "files"}
	k.mustJSON(append([]string{"protect", "--source", src}, item...)...)
	ransomware.Edit(t, src, 3)
	st := k.mustJSON(append([]string{"backup-now"}, item...)...)
	require.Len(t, st.RecoveryPoints, 2)
	assert.Empty(t, st.RecoveryPoints[1].Suspect, "a normal day raises nothing")
	require.NotNil(t, st.RecoveryPoints[1].Change)
	assert.Equal(t, 3, st.RecoveryPoints[1].Change.Changed)

	ransomware.Encrypt(t, src, 60)
	st = k.mustJSON(append([]string{"backup-now"}, item...)...)
	require.Len(t, st.RecoveryPoints, 3)
	hit := st.RecoveryPoints[2]
	assert.Contains(t, hit.Suspect, `60 files replaced by files with the new extension ".locked"`)
	assert.Equal(t, 1, hit.Change.RansomNotes)

	out, err := k.starter(append([]string{"status"}, item...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "ANOMALY: "+hit.ID+" is suspect")
	assert.Contains(t, out, "+61 ~0 -60 (60 to .locked) 100% incompressible, 1 ransom note")
	require.Eventually(t, func() bool { return k.counts("vault1")[items.Anomaly] == 1 }, 20*time.Second, 100*time.Millisecond, "visibility counts the item")
	out, err = k.starter("list", "--vault", "vault1", "--state", "Anomaly")
	require.NoError(t, err)
	assert.Regexp(t, `files +Protected .*suspect points`, out)

	st = k.mustJSON(append([]string{"delete", "--requested-by", "mallory"}, item...)...)
	assert.Equal(t, protocol.Protected, st.ProtectionState, "encrypting, then deleting, gains nothing")
	require.NotNil(t, st.PendingDelete)
	assert.Contains(t, st.PendingDelete.Why, "has an anomaly since recovery point "+hit.ID)

	_, err = k.starter(append([]string{"clear-anomaly", "--requested-by", "alice"}, item...)...)
	assert.EqualError(t, err, "clear-anomaly needs --reason: say whether it was a false alarm or a change you accept; nothing was sent")
	_, err = k.starter(append([]string{"clear-anomaly", "--requested-by", "alice", "--reason", "incident closed, files restored"}, item...)...)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return k.mustJSON(append([]string{"status"}, item...)...).ProtectionState == protocol.SoftDeleted
	}, 30*time.Second, 200*time.Millisecond, "the delete that waited goes on once cleared")
	require.Eventually(t, func() bool { return k.counts("vault1")[items.Anomaly] == 0 }, 20*time.Second, 100*time.Millisecond)
}

// TestARestoreDrillCatchesABitFlipAndTheNextBackupHeals runs on a real
// server: a point verifies, a bit flipped in the store's data makes the
// drill fail with a non-zero exit and marks the point, and the next backup
// stores every file afresh, after which the point verifies again.
func TestARestoreDrillCatchesABitFlipAndTheNextBackupHeals(t *testing.T) {
	k := startCluster(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 20, 40<<10)
	item := []string{"--vault", "vault1", "--item", "files"}
	first := k.mustJSON(append([]string{"protect", "--source", src}, item...)...).RecoveryPoints[0]

	out, err := k.starter(append([]string{"verify"}, item...)...)
	require.NoError(t, err, out)
	st := k.mustJSON(append([]string{"status"}, item...)...)
	assert.True(t, st.RecoveryPoints[0].Verified)
	assert.Contains(t, st.Audit[len(st.Audit)-1].Detail, "recovery point "+first.ID+" read back whole: 20 files")

	var packs []string
	root := filepath.Join(k.storeDir, "vault1", "files")
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		// Data packs, sharded into directories by their names' start.
		if rel, _ := filepath.Rel(root, p); err == nil && d.Type().IsRegular() && strings.HasPrefix(rel, "p") {
			packs = append(packs, p)
		}
		return err
	}))
	require.NotEmpty(t, packs)
	largest := slices.MaxFunc(packs, func(a, b string) int { return int(size(t, a) - size(t, b)) })
	data, err := os.ReadFile(largest)
	require.NoError(t, err)
	for i := 0; i < len(data); i += 64 {
		data[i] ^= 0x01
	}
	require.NoError(t, os.WriteFile(largest, data, 0o600))

	_, err = k.starter(append([]string{"verify", "--recovery-point", first.ID}, item...)...)
	require.Error(t, err, "a failed drill is a non-zero exit")
	assert.Regexp(t, `verify failed: recovery point `+first.ID+` of item files did not verify: .*\d+ of 20 files do not read back as backed up`, err.Error())
	out, err = k.starter(append([]string{"status"}, item...)...)
	require.NoError(t, err)
	assert.Contains(t, out, "VERIFY FAILED: "+first.ID)
	_, err = k.starter(append([]string{"restore", "--recovery-point", first.ID, "--target", filepath.Join(t.TempDir(), "out")}, item...)...)
	require.Error(t, err, "the restore fails loudly rather than return wrong bytes")

	k.mustJSON(append([]string{"backup-now"}, item...)...)
	out, err = k.starter(append([]string{"verify", "--recovery-point", first.ID}, item...)...)
	require.NoError(t, err, "the fresh backup stored the damaged data again: %s", out)
}

func size(t *testing.T, p string) int64 {
	info, err := os.Stat(p)
	require.NoError(t, err)
	return info.Size()
}
