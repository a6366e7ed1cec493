package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/treediff"
)

const testPassword = "correct horse battery staple"

// newDirStore is a store in a directory of the test.
func newDirStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Location: t.TempDir(), Password: testPassword, WorkDir: t.TempDir(),
		SourceRoots: []string{os.TempDir()}, RestoreRoots: []string{os.TempDir()}})
	require.NoError(t, err)
	return s
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	diffs, err := treediff.Diff(want, got)
	require.NoError(t, err)
	assert.Empty(t, diffs)
}

func backup(t *testing.T, s *Store, item, id, src string, options ...BackupOption) Point {
	t.Helper()
	p, err := s.Backup(context.Background(), "vault1", item, id, src, time.Time{}, nil, options...)
	require.NoError(t, err)
	return p
}

func TestBackupAndRestoreAreByteIdentical(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", src)
	assert.Len(t, p.SHA256, 64)
	assert.Equal(t, 3, p.Files)
	assert.Equal(t, int64(3<<20+len(`{"cpu": 2}`)+len("#!/bin/sh\necho hi\n")), p.SizeBytes, "the logical size of the files")
	assert.Positive(t, p.NewBytes)
	assert.Less(t, p.NewBytes, int64(3<<20), "compressed")

	target := filepath.Join(t.TempDir(), "restore", "vm1")
	got, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	assert.Equal(t, Restored{Files: 3, Bytes: p.SizeBytes}, got)
	sameTree(t, src, target)

	// An existing empty directory is a valid target too.
	empty := t.TempDir()
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, empty, nil)
	require.NoError(t, err)
	sameTree(t, src, empty)
}

// TestAnUnchangedTreeIsNotReadAgain: the previous point says which files
// are unchanged, and only the changed ones are read; the content hash
// follows the content.
func TestAnUnchangedTreeIsNotReadAgain(t *testing.T) {
	src := treediff.WriteSample(t)
	// Written more than the margin before the first point started: a file
	// touched closer to a point is hashed again by the next.
	time.Sleep(changeTimeMargin + 100*time.Millisecond)
	s := newDirStore(t)
	first := backup(t, s, "vm1", "rp-1", src)

	var read int64
	second, err := s.Backup(context.Background(), "vault1", "vm1", "rp-2", src, time.Time{}, func(n int64) { read = n })
	require.NoError(t, err)
	assert.Zero(t, read, "no file read again")
	assert.Equal(t, first.SHA256, second.SHA256, "the same tree, the same content hash")
	assert.Less(t, second.NewBytes, int64(64<<10), "an unchanged tree adds next to nothing")

	later := time.Now().Add(time.Minute)
	require.NoError(t, os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"cpu": 4}`), 0o640))
	require.NoError(t, os.Chtimes(filepath.Join(src, "config.json"), later, later))
	third, err := s.Backup(context.Background(), "vault1", "vm1", "rp-3", src, time.Time{}, func(n int64) { read = n })
	require.NoError(t, err)
	assert.Equal(t, int64(len(`{"cpu": 4}`)), read, "only the changed file is read")
	assert.NotEqual(t, first.SHA256, third.SHA256)

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-3", third.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
	ids, err := s.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-1", "rp-2", "rp-3"}, ids)
}

func TestBackupRetriedWithTheSameIDKeepsTheFirstPoint(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	first := backup(t, s, "vm1", "rp-1", src)
	require.NoError(t, os.WriteFile(filepath.Join(src, "config.json"), []byte("changed"), 0o640))
	again := backup(t, s, "vm1", "rp-1", src)
	assert.Equal(t, first, again, "the point already taken, not a second one")
	ids, err := s.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-1"}, ids)
}

func TestInterruptedBackupLeavesNoRecoveryPoint(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := s.Backup(ctx, "vault1", "vm1", "rp-1", src, time.Time{}, func(n int64) {
		if n > 1<<20 {
			cancel()
		}
	})
	require.Error(t, err)
	ids, err := s.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Empty(t, ids)
	p := backup(t, s, "vm1", "rp-1", src)
	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

// objectFiles are the files of an item's repository in a directory store.
func objectFiles(t *testing.T, s *Store, item, prefix string) []string {
	t.Helper()
	var files []string
	root := filepath.Join(s.backend.(*directory).root, "vault1", item)
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		// Objects are sharded into directories by the first characters
		// of their names.
		rel, _ := filepath.Rel(root, p)
		if err == nil && !d.IsDir() && strings.HasPrefix(rel, prefix) {
			files = append(files, p)
		}
		return err
	}))
	return files
}

func fileSize(t *testing.T, p string) int64 {
	info, err := os.Stat(p)
	require.NoError(t, err)
	return info.Size()
}

func TestTamperedOrMissingObjectsAreReportedByName(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", src)
	packs := objectFiles(t, s, "vm1", "p")
	require.NotEmpty(t, packs, "data packs")
	root := filepath.Join(s.backend.(*directory).root, "vault1", "vm1")
	for _, pack := range packs {
		rel, _ := filepath.Rel(root, pack)
		name := strings.TrimSuffix(strings.ReplaceAll(rel, "/", ""), ".f")
		data, err := os.ReadFile(pack)
		require.NoError(t, err)
		// A byte in every 64: a pack may end in padding no one reads.
		tampered := bytes.Clone(data)
		for i := 0; i < len(tampered); i += 64 {
			tampered[i] ^= 0x55
		}
		require.NoError(t, os.WriteFile(pack, tampered, 0o600))
		// Read from the store, not from what the open repository keeps.
		s.forget(context.Background(), itemPrefix("vault1", "vm1"))
		target := filepath.Join(t.TempDir(), "out")
		_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
		require.ErrorIs(t, err, ErrCorrupted, name)
		assert.Contains(t, err.Error(), name, "the damaged object is named")
		_, statErr := os.Stat(target)
		assert.True(t, os.IsNotExist(statErr), "nothing reached the target")

		require.NoError(t, os.Remove(pack))
		s.forget(context.Background(), itemPrefix("vault1", "vm1"))
		_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
		require.ErrorIs(t, err, ErrCorrupted, name)
		assert.Contains(t, err.Error(), name, "the missing object is named")
		require.NoError(t, os.WriteFile(pack, data, 0o600))
	}
}

func TestRestoreIsCheckedAgainstTheHashTheWorkflowRecorded(t *testing.T) {
	s := newDirStore(t)
	backup(t, s, "vm1", "rp-1", treediff.WriteSample(t))
	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", strings.Repeat("0", 64), target, nil)
	require.ErrorIs(t, err, ErrCorrupted)
	assert.Contains(t, err.Error(), "the workflow recorded 0000")
	_, statErr := os.Stat(target)
	assert.True(t, os.IsNotExist(statErr), "nothing reached the target")
}

func TestRestoreRefusesBadInput(t *testing.T) {
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", treediff.WriteSample(t))
	ctx := context.Background()
	full := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o600))
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for _, c := range []struct {
		item, id, target string
		want             error
		text             string
	}{
		{"vm1", "rp-1", "relative/path", ErrInvalidInput, "is not absolute"},
		{"vm1", "rp-1", full, ErrTargetNotEmpty, "is a directory that is not empty"},
		{"vm1", "rp-1", file, ErrTargetNotEmpty, "is a file, not a directory"},
		{"vm1", "rp-9", filepath.Join(t.TempDir(), "a"), ErrUnknownRecoveryPoint, "recovery point rp-9 of item vm1 is not in the store"},
		{"vm2", "rp-1", filepath.Join(t.TempDir(), "b"), ErrUnknownRecoveryPoint, "is not in the store"},
		{"vm1", "../rp-1", filepath.Join(t.TempDir(), "c"), ErrInvalidInput, "cannot name a part of the store"},
	} {
		_, err := s.Restore(ctx, "vault1", c.item, c.id, p.SHA256, c.target, nil)
		assert.ErrorIs(t, err, c.want, c.target)
		assert.ErrorContains(t, err, c.text)
	}
	entries, _ := os.ReadDir(full)
	assert.Len(t, entries, 1, "a refused restore writes nothing")
}

func TestRestoreIntoTheStoreIsRefused(t *testing.T) {
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", treediff.WriteSample(t))
	root := s.backend.(*directory).root
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, filepath.Join(root, "vault1", "vm2"), nil)
	assert.ErrorIs(t, err, ErrInvalidInput)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(root, link))
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, filepath.Join(link, "vm2"), nil)
	assert.ErrorIs(t, err, ErrInvalidInput, "a symlink into the store is still the store")
}

func TestSourceGivenThroughASymlinkIsBackedUpAsItsTree(t *testing.T) {
	src := treediff.WriteSample(t)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(src, link))
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", link)
	assert.Equal(t, 3, p.Files)
	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)

	missing := filepath.Join(t.TempDir(), "does-not-exist")
	_, err = s.Backup(context.Background(), "vault1", "vm1", "rp-2", missing, time.Time{}, nil)
	assert.ErrorIs(t, err, ErrSourceMissing)
	assert.ErrorContains(t, err, "source path "+missing+" is not a directory the worker can read")
}

func TestNamesThatAreNotUTF8RoundTrip(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "caf\xe9.txt"), []byte("latin-1 name"), 0o644))
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", src)
	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

func TestSpecialFilesAreSkippedAndSaidSo(t *testing.T) {
	src := treediff.WriteSample(t)
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "pipe"), 0o600))
	s := newDirStore(t)
	p := backup(t, s, "vm1", "rp-1", src)
	assert.Equal(t, []string{"pipe"}, p.Skipped)
	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(src, "pipe")))
	sameTree(t, src, target)
}

// TestLargeFilesReportProgressWhileTheyAreCopied: a heartbeat per file
// would go quiet for the whole of a large disk image.
func TestLargeFilesReportProgressWhileTheyAreCopied(t *testing.T) {
	src := treediff.WriteSample(t) // holds a 3 MiB file
	s := newDirStore(t)
	var reports []int64
	p, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", src, time.Time{}, func(n int64) { reports = append(reports, n) })
	require.NoError(t, err)
	assert.GreaterOrEqual(t, countBetween(reports, 1, 3<<20), 2, "reports inside the large file: %v", reports)

	reports = nil
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, filepath.Join(t.TempDir(), "out"), func(n int64) { reports = append(reports, n) })
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

func TestAWrongPasswordIsRefusedInASentence(t *testing.T) {
	s := newDirStore(t)
	backup(t, s, "vm1", "rp-1", treediff.WriteSample(t))
	other, err := Open(context.Background(), Options{Location: s.backend.(*directory).root, Password: "another", WorkDir: t.TempDir()})
	require.NoError(t, err)
	_, err = other.List(context.Background(), "vault1", "vm1")
	assert.EqualError(t, err, "the repository of item vm1 does not open with this worker's repository password: every worker must be given the same one")
	_, err = Open(context.Background(), Options{Location: t.TempDir(), WorkDir: t.TempDir()})
	assert.ErrorContains(t, err, "the store needs a repository password")
}

func TestDeleteAndPurgeAreIdempotent(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	ctx := context.Background()
	backup(t, s, "vm1", "rp-1", src)
	backup(t, s, "vm1", "rp-2", src)
	n, err := s.Delete(ctx, "vault1", "vm1", []string{"rp-1", "rp-9"}, time.Time{}, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-1"}, time.Time{}, nil)
	require.NoError(t, err)
	assert.Zero(t, n, "already gone")
	ids, err := s.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-2"}, ids)

	require.NoError(t, s.Purge(ctx, "vault1", "vm1", nil))
	require.NoError(t, s.Purge(ctx, "vault1", "vm1", nil), "purging a purged item succeeds")
	ids, err = s.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Empty(t, ids)
	n, err = s.Delete(ctx, "vault1", "vm9", []string{"rp-1"}, time.Time{}, nil)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.True(t, errors.Is(checkNames("vault1", "..", "rp-1"), ErrInvalidInput))
}

// TestBackupsAndCollectionsTakeTurnsOnOneRepository: the daily rhythm of an
// item, a backup then a collection, several times on one open store.
func TestBackupsAndCollectionsTakeTurnsOnOneRepository(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	ctx := context.Background()
	var last Point
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("rp-%d", i)
		require.NoError(t, os.WriteFile(filepath.Join(src, "day.txt"), []byte(id), 0o644))
		last = backup(t, s, "vm1", id, src)
		if i > 1 {
			n, err := s.Delete(ctx, "vault1", "vm1", []string{fmt.Sprintf("rp-%d", i-1)}, time.Time{}, nil)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}
		ids, err := s.List(ctx, "vault1", "vm1")
		require.NoError(t, err)
		require.Equal(t, []string{id}, ids)
	}
	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(ctx, "vault1", "vm1", "rp-4", last.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

// TestNewItemsAreMadeFromOneTemplateAndStayApart: a store derives a key
// from its password once to make its template, and each new item's
// repository is the template's format, PBKDF2-keyed; each is still its own
// set of objects: purging one leaves the other whole.
func TestNewItemsAreMadeFromOneTemplateAndStayApart(t *testing.T) {
	src := treediff.WriteSample(t)
	s := newDirStore(t)
	p1 := backup(t, s, "vm1", "rp-1", src)
	backup(t, s, "vm2", "rp-1", src)
	root := s.backend.(*directory).root
	format := func(item string) []byte {
		data, err := os.ReadFile(filepath.Join(root, "vault1", item, "kopia.repository.f"))
		require.NoError(t, err)
		return data
	}
	assert.Equal(t, format("vm1"), format("vm2"), "both made from the template")
	assert.Contains(t, string(format("vm1")), `"keyAlgo": "pbkdf2-sha256-600000"`)

	require.NoError(t, s.Purge(context.Background(), "vault1", "vm2", nil))
	_, err := os.Stat(filepath.Join(root, "vault1", "vm2"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing of vm2 is left")
	target := t.TempDir()
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p1.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)

	// A store with another password makes its own template, which this
	// one's password does not open.
	other, err := Open(context.Background(), Options{Location: root, Password: "another", WorkDir: t.TempDir(), SourceRoots: []string{os.TempDir()}})
	require.NoError(t, err)
	backup(t, other, "vm3", "rp-1", src)
	assert.NotEqual(t, format("vm1"), format("vm3"))
	_, err = s.List(context.Background(), "vault1", "vm3")
	assert.ErrorContains(t, err, "does not open with this worker's repository password")

	// Making a repository where one exists changes nothing: its data was
	// written with its own keys.
	before := format("vm1")
	prefix := itemPrefix("vault1", "vm1")
	require.NoError(t, other.create(context.Background(), other.backend.connection(prefix, lockKey(other, prefix))))
	assert.Equal(t, before, format("vm1"))
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p1.SHA256, t.TempDir(), nil)
	assert.NoError(t, err)
}

// TestFailuresThatNameFilesSayNoneOfThem: what reaches an item's history
// names no file of its source; the worker's log gets the detail.
func TestFailuresThatNameFilesSayNoneOfThem(t *testing.T) {
	err := fmt.Errorf("%w: recovery point rp-1: %w", ErrCorrupted, named("what was restored differs from the file list the backup recorded",
		errors.New("file secret-plans/q3.xlsx: checksum mismatch")))
	assert.NotContains(t, err.Error(), "secret-plans")
	assert.Contains(t, err.Error(), "the worker's log names the files")
	assert.ErrorIs(t, err, ErrCorrupted)
	var n *NamedError
	require.ErrorAs(t, err, &n)
	assert.Contains(t, n.Detail(), "secret-plans/q3.xlsx")
}

// packBytes sums the sizes of the item's pack blobs (kopia's p and q
// blobs) in a directory store.
func packBytes(t *testing.T, s *Store, item string) int64 {
	t.Helper()
	var n int64
	root := filepath.Join(s.backend.(*directory).root, "vault1", item)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		// Objects are sharded into directories by their names' first
		// characters.
		if rel, _ := filepath.Rel(root, p); strings.HasPrefix(rel, "p") || strings.HasPrefix(rel, "q") {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	}))
	return n
}

// TestNewBytesAreWhatThePointWrote: a point's newBytes counts the packs it
// wrote, flushed, not only what was uploaded before the last pack closed:
// the first backup and a tree rewritten as random bytes, as ransomware
// would, each add about their size.
func TestNewBytesAreWhatThePointWrote(t *testing.T) {
	src := filepath.Join(t.TempDir(), "vm1")
	require.NoError(t, os.MkdirAll(src, 0o755))
	write := func() {
		for i := range 100 {
			b := make([]byte, 20<<10)
			_, err := rand.Read(b)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d.bin", i)), b, 0o600))
		}
	}
	s := newDirStore(t)
	write()
	before := packBytes(t, s, "vm1")
	first := backup(t, s, "vm1", "rp-1", src)
	wrote := packBytes(t, s, "vm1") - before
	assert.Greater(t, wrote, int64(2_000_000), "2 MB that cannot compress")
	assert.InEpsilon(t, wrote, first.NewBytes, 0.1, "the first point's new bytes: %d, packs written: %d", first.NewBytes, wrote)

	write() // encrypted in place
	before = packBytes(t, s, "vm1")
	second := backup(t, s, "vm1", "rp-2", src)
	wrote = packBytes(t, s, "vm1") - before
	assert.InEpsilon(t, wrote, second.NewBytes, 0.1, "the rewritten point's new bytes: %d, packs written: %d", second.NewBytes, wrote)
}
