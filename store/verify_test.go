package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/ransomware"
)

// flip damages every 64th byte of the largest of files, as a failing disk
// would: the largest pack holds the files' data, the point's small file
// list is in a pack of its own.
func flip(t *testing.T, files []string) {
	t.Helper()
	require.NotEmpty(t, files)
	slices.SortFunc(files, func(a, b string) int { return int(fileSize(t, b) - fileSize(t, a)) })
	for _, f := range files[:1] {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for i := 0; i < len(data); i += 64 {
			data[i] ^= 0x01
		}
		require.NoError(t, os.WriteFile(f, data, 0o600))
	}
}

// dataPacksIn are the files under dir holding an item's data packs.
func dataPacksIn(t *testing.T, dir string) []string {
	t.Helper()
	var packs []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasPrefix(d.Name(), "p") && strings.Contains(p, filepath.Join("vault1", "vm1")) {
			packs = append(packs, p)
		}
		return err
	}))
	return packs
}

// verifyCatchesABitFlip: a point verifies, a bit flipped in its data makes
// the verification fail without naming a file and the restore refuse, and
// a fresh backup stores the damaged data again, so the point heals.
func verifyCatchesABitFlip(t *testing.T, s *Store, packs func() []string) {
	ctx := context.Background()
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 20, 40<<10)
	p := backup(t, s, "vm1", "rp-1", src)
	v, err := s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, v.Files)
	assert.Equal(t, p.SizeBytes, v.Bytes)
	restore := func() error {
		_, err := s.Restore(ctx, "vault1", "vm1", "rp-1", p.SHA256, filepath.Join(t.TempDir(), "out"), nil)
		return err
	}

	flip(t, packs())
	s.forget(ctx, itemPrefix("vault1", "vm1"))
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.ErrorIs(t, err, ErrVerifyFailed)
	assert.Regexp(t, `recovery point rp-1: \d+ of 20 files do not read back as backed up \(\d+ damaged pieces recorded`, err.Error())
	assert.NotContains(t, err.Error(), "report-", "no file is named")
	require.ErrorIs(t, restore(), ErrCorrupted, "the restore fails loudly rather than return wrong bytes")

	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-nope"}, time.Time{}, nil)
	require.NoError(t, err, "a collection passes a damaged pack by")

	fresh := backup(t, s, "vm1", "rp-2", src)
	assert.True(t, fresh.Fresh, "the next backup after a record reads every file and writes the damage anew")
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.NoError(t, err, "the fresh backup stored the damaged data again: the old point heals")
	require.NoError(t, restore())
	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-nope"}, time.Time{}, nil)
	require.NoError(t, err, "healed, the item collects again")
	assert.False(t, backup(t, s, "vm1", "rp-3", src).Fresh, "once: the record is gone")
}

func TestVerificationCatchesABitFlipInADirectoryStore(t *testing.T) {
	s := newDirStore(t)
	verifyCatchesABitFlip(t, s, func() []string { return objectFiles(t, s, "vm1", "p") })
}

func TestVerificationCatchesABitFlipOnS3(t *testing.T) {
	s, srv := newS3Store(t, true, "")
	verifyCatchesABitFlip(t, s, func() []string { return dataPacksIn(t, srv.Data) })
}

// TestDamageTheSourceNoLongerHoldsIsLeftAndBlocksNothing: a damaged file
// changed at the source since cannot be written anew; its pieces are left
// as they are (forgotten, no collection could pass them), the point stays
// damaged, and backups and collections go on.
func TestDamageTheSourceNoLongerHoldsIsLeftAndBlocksNothing(t *testing.T) {
	ctx := context.Background()
	s := newDirStore(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 20, 40<<10)
	p := backup(t, s, "vm1", "rp-1", src)
	flip(t, objectFiles(t, s, "vm1", "p"))
	s.forget(ctx, itemPrefix("vault1", "vm1"))
	_, err := s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.ErrorIs(t, err, ErrVerifyFailed)

	ransomware.Edit(t, src, 20)
	assert.True(t, backup(t, s, "vm1", "rp-2", src).Fresh)
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.ErrorIs(t, err, ErrVerifyFailed, "nothing to write it anew from")
	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-nope"}, time.Time{}, nil)
	require.NoError(t, err, "collections go on")
	p3 := backup(t, s, "vm1", "rp-3", src)
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-3", p3.SHA256, nil)
	require.NoError(t, err, "new points are whole")
}
