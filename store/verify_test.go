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

	// A backup that is not fresh comes between: it does not undo the
	// record. A collection cannot compact the damaged pack meanwhile.
	backup(t, s, "vm1", "rp-2", src)
	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-2"}, time.Time{}, nil)
	require.Error(t, err, "a collection fails loudly while damage remains")
	_, err = s.Backup(ctx, "vault1", "vm1", "rp-3", src, time.Time{}, nil, Fresh())
	require.NoError(t, err)
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-1", p.SHA256, nil)
	require.NoError(t, err, "the fresh backup stored the damaged data again: the old point heals")
	require.NoError(t, restore())
	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-2"}, time.Time{}, nil)
	require.NoError(t, err, "healed, the item collects again")
}

func TestVerificationCatchesABitFlipInADirectoryStore(t *testing.T) {
	s := newDirStore(t)
	verifyCatchesABitFlip(t, s, func() []string { return objectFiles(t, s, "vm1", "p") })
}

func TestVerificationCatchesABitFlipOnS3(t *testing.T) {
	s, srv := newS3Store(t, true, "")
	verifyCatchesABitFlip(t, s, func() []string { return dataPacksIn(t, srv.Data) })
}
