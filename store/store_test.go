package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/treediff"
)

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	diffs, err := treediff.Diff(want, got)
	require.NoError(t, err)
	assert.Empty(t, diffs)
}

func TestBackupAndRestoreAreByteIdentical(t *testing.T) {
	src := treediff.WriteSample(t)
	s := &Store{Root: t.TempDir()}
	m, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, nil)
	require.NoError(t, err)
	assert.Len(t, m.ArchiveSHA256, 64)
	assert.Less(t, m.ArchiveSize, int64(3<<20), "compressed")

	target := filepath.Join(t.TempDir(), "restore", "vm1")
	got, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", m.ArchiveSHA256, target, nil)
	require.NoError(t, err)
	assert.Equal(t, m.ArchiveSHA256, got.ArchiveSHA256)
	sameTree(t, src, target)

	// An existing empty directory is a valid target too.
	empty := t.TempDir()
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", "", empty, nil)
	require.NoError(t, err)
	sameTree(t, src, empty)
}

func TestRecoveryPointIsReadOnlyOnceWritten(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	_, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", treediff.WriteSample(t), nil)
	require.NoError(t, err)
	for _, name := range []string{archiveName, manifestName} {
		info, err := os.Stat(filepath.Join(s.Root, "vault1", "vm1", "rp-1", name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o444), info.Mode().Perm(), name)
	}
}

func TestBackupRetriedWithTheSameIDKeepsTheFirstCopy(t *testing.T) {
	src := treediff.WriteSample(t)
	s := &Store{Root: t.TempDir()}
	first, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, nil)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(src, "config.json"), []byte("changed"), 0o640))
	again, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, nil)
	require.NoError(t, err)
	assert.Equal(t, first.ArchiveSHA256, again.ArchiveSHA256, "a recovery point is never modified")
	ids, err := s.List("vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-1"}, ids)
}

func TestInterruptedBackupLeavesNoPartialRecoveryPoint(t *testing.T) {
	src := treediff.WriteSample(t)
	s := &Store{Root: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	files := 0
	_, err := s.Backup(ctx, "vault1", "vm1", "rp-1", src, func(int64) {
		files++
		if files == 3 {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	entries, err := os.ReadDir(filepath.Join(s.Root, "vault1", "vm1"))
	require.NoError(t, err)
	assert.Empty(t, entries, "neither a recovery point nor a temporary one is left")
}

func TestTamperedRecoveryPointIsReportedByName(t *testing.T) {
	src := treediff.WriteSample(t)
	cases := map[string]struct {
		tamper func(t *testing.T, rp string)
		want   string
	}{
		"archive bytes flipped": {func(t *testing.T, rp string) {
			p := filepath.Join(rp, archiveName)
			require.NoError(t, os.Chmod(p, 0o644))
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			data[len(data)/2] ^= 0xff
			require.NoError(t, os.WriteFile(p, data, 0o444))
		}, "archive checksum mismatch"},
		"file checksum in manifest changed": {func(t *testing.T, rp string) {
			p := filepath.Join(rp, manifestName)
			require.NoError(t, os.Chmod(p, 0o644))
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			m := string(data)
			i := strings.Index(m, `"sha256": "`) + len(`"sha256": "`)
			m = m[:i] + strings.Repeat("0", 64) + m[i+64:]
			require.NoError(t, os.WriteFile(p, []byte(m), 0o444))
		}, "checksum mismatch"},
		"manifest removed": {func(t *testing.T, rp string) {
			require.NoError(t, os.Remove(filepath.Join(rp, manifestName)))
		}, "no readable manifest"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := &Store{Root: t.TempDir()}
			m, err := s.Backup(context.Background(), "vault1", "vm1", "rp-7", src, nil)
			require.NoError(t, err)
			c.tamper(t, filepath.Join(s.Root, "vault1", "vm1", "rp-7"))
			target := filepath.Join(t.TempDir(), "out")
			_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-7", m.ArchiveSHA256, target, nil)
			require.ErrorIs(t, err, ErrCorrupted)
			assert.Contains(t, err.Error(), "rp-7")
			assert.Contains(t, err.Error(), c.want)
			_, statErr := os.Stat(target)
			assert.True(t, os.IsNotExist(statErr), "nothing of a tampered point lands in the target")
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".restore-*"))
			assert.Empty(t, leftovers)
		})
	}
}

func TestRestoreRefusesBadInput(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	src := treediff.WriteSample(t)
	_, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, nil)
	require.NoError(t, err)

	notEmpty := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notEmpty, "keep.txt"), []byte("mine"), 0o644))
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", "", notEmpty, nil)
	assert.ErrorIs(t, err, ErrTargetNotEmpty)
	data, _ := os.ReadFile(filepath.Join(notEmpty, "keep.txt"))
	assert.Equal(t, "mine", string(data), "nothing overwritten")

	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-404", "", filepath.Join(t.TempDir(), "x"), nil)
	assert.ErrorIs(t, err, ErrUnknownRecoveryPoint)

	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", "deadbeef", filepath.Join(t.TempDir(), "x"), nil)
	assert.ErrorIs(t, err, ErrCorrupted, "the checksum the workflow recorded must match")

	_, err = s.Restore(context.Background(), "vault1", "vm1", "../../etc", "", filepath.Join(t.TempDir(), "x"), nil)
	assert.ErrorIs(t, err, ErrInvalidInput)

	_, err = s.Backup(context.Background(), "vault1", "vm1", "rp-2", "/does/not/exist", nil)
	assert.ErrorIs(t, err, ErrSourceMissing)
}

func TestDeleteAndPurgeAreIdempotent(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	src := treediff.WriteSample(t)
	for _, id := range []string{"rp-1", "rp-2", "rp-3"} {
		_, err := s.Backup(context.Background(), "vault1", "vm1", id, src, nil)
		require.NoError(t, err)
	}
	n, err := s.Delete("vault1", "vm1", []string{"rp-1", "rp-2"}, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = s.Delete("vault1", "vm1", []string{"rp-1", "rp-2"}, nil)
	require.NoError(t, err)
	assert.Zero(t, n, "deleting again is harmless")
	ids, _ := s.List("vault1", "vm1")
	assert.Equal(t, []string{"rp-3"}, ids)

	// A partial backup left by a crashed worker is purged too.
	require.NoError(t, os.MkdirAll(filepath.Join(s.Root, "vault1", "vm1", tmpPrefix+"rp-4-123"), 0o755))
	var purged []int64
	require.NoError(t, s.Purge("vault1", "vm1", func(n int64) { purged = append(purged, n) }))
	assert.Equal(t, []int64{1, 2}, purged, "progress after each recovery point and leftover")
	require.NoError(t, s.Purge("vault1", "vm1", nil))
	_, err = os.Stat(filepath.Join(s.Root, "vault1", "vm1"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "no byte of the item is left")
}

func TestSourceGivenThroughASymlinkIsBackedUpAsItsTree(t *testing.T) {
	src := treediff.WriteSample(t)
	link := filepath.Join(t.TempDir(), "vm1-link")
	require.NoError(t, os.Symlink(src, link))
	s := &Store{Root: t.TempDir()}
	m, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", link, nil)
	require.NoError(t, err)
	files := 0
	for _, e := range m.Entries {
		if e.Type == EntryFile {
			files++
		}
	}
	assert.Equal(t, 3, files, "the tree behind the link, not the link")
	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", m.ArchiveSHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

func TestNamesThatAreNotUTF8RoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "vm1")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "d\xff"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "caf\xe9.txt"), []byte("latin-1 name"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "d\xff", "x"), []byte("inside"), 0o644))
	s := &Store{Root: t.TempDir()}
	m, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, nil)
	require.NoError(t, err)
	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", m.ArchiveSHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

func TestRestoreIntoTheStoreIsRefused(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	_, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", treediff.WriteSample(t), nil)
	require.NoError(t, err)
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", "", filepath.Join(s.Root, "vault1", "elsewhere"), nil)
	assert.ErrorIs(t, err, ErrInvalidInput)
	assert.ErrorContains(t, err, "inside the recovery-point store")

	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(filepath.Join(s.Root, "vault1"), link))
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", "", filepath.Join(link, "vm2"), nil)
	assert.ErrorIs(t, err, ErrInvalidInput, "a symlink into the store is still the store")
	ids, _ := s.List("vault1", "vm2")
	assert.Empty(t, ids)
}

// TestLargeFilesReportProgressWhileTheyAreCopied: a heartbeat per file
// would go quiet for the whole of a large disk image.
func TestLargeFilesReportProgressWhileTheyAreCopied(t *testing.T) {
	src := treediff.WriteSample(t) // holds a 3 MiB file
	s := &Store{Root: t.TempDir()}
	var reports []int64
	m, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, func(n int64) { reports = append(reports, n) })
	require.NoError(t, err)
	assert.GreaterOrEqual(t, countBetween(reports, 1, 3<<20), 2, "reports inside the large file: %v", reports)

	reports = nil
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", m.ArchiveSHA256, filepath.Join(t.TempDir(), "out"), func(n int64) { reports = append(reports, n) })
	require.NoError(t, err)
	assert.NotEmpty(t, reports, "restore reports progress")
}

func countBetween(values []int64, lo, hi int64) int {
	n := 0
	for _, v := range values {
		if v >= lo && v < hi {
			n++
		}
	}
	return n
}
