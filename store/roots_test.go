package store

import (
	"context"
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

// hostPaths is a worker's host: one source root, one restore root, its
// data directory, and a directory outside all of them holding a secret.
type hostPaths struct {
	base, sources, restores, data, outside string
}

func newHostPaths(t *testing.T) hostPaths {
	base := t.TempDir()
	h := hostPaths{base: base, sources: filepath.Join(base, "sources"), restores: filepath.Join(base, "restores"),
		data: filepath.Join(base, "sources", "worker-data"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{h.sources, h.restores, h.data, h.outside} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(h.outside, "secret"), []byte("the host's secret"), 0o600))
	return h
}

// source is a source of one file in the source root.
func (h hostPaths) source(t *testing.T) string {
	src := filepath.Join(h.sources, "vm1")
	require.NoError(t, os.MkdirAll(src, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "data"), []byte("mine"), 0o644))
	return src
}

func (h hostPaths) store(t *testing.T, owners bool) *Store {
	s, err := Open(context.Background(), Options{Location: filepath.Join(h.data, "store"), Password: testPassword, WorkDir: filepath.Join(h.data, "kopia"),
		SourceRoots: []string{h.sources}, RestoreRoots: []string{h.restores}, Private: []string{h.data}, RestoreOwners: owners})
	require.NoError(t, err)
	return s
}

func TestSourcesStayInsideTheirRoots(t *testing.T) {
	h := newHostPaths(t)
	s := h.store(t, false)
	require.NoError(t, os.Symlink(h.outside, filepath.Join(h.sources, "link-out")))
	require.NoError(t, os.Symlink(h.base, filepath.Join(h.sources, "parent-out")))
	for _, c := range []struct{ name, source, want string }{
		{"outside every root", h.outside, "is outside this worker's source roots"},
		{"dot-dot out of the root", h.sources + "/../outside", "is outside this worker's source roots"},
		{"a symlink leading out", filepath.Join(h.sources, "link-out"), "leaves its root"},
		{"a symlinked parent leading out", filepath.Join(h.sources, "parent-out", "outside"), "leaves its root"},
		{"the worker's data directory", h.data, "the worker's own directory"},
		{"a source holding the data directory", h.sources, "the worker's own directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Backup(context.Background(), "vault1", "vm1", "rp-1", c.source, time.Time{}, nil)
			require.ErrorIs(t, err, ErrSourceMissing)
			assert.ErrorContains(t, err, c.want)
		})
	}
	ids, err := s.List(context.Background(), "vault1", "vm1")
	require.NoError(t, err)
	assert.Empty(t, ids, "nothing was backed up")

	none, err := Open(context.Background(), Options{Location: t.TempDir(), Password: testPassword, WorkDir: t.TempDir()})
	require.NoError(t, err)
	_, err = none.Backup(context.Background(), "vault1", "vm1", "rp-1", treediff.WriteSample(t), time.Time{}, nil)
	assert.ErrorContains(t, err, "given no source root, so it reads and writes no host path for a source: start it with --source-root DIR")
}

func TestASymlinkInsideASourceIsKeptAndNeverFollowed(t *testing.T) {
	h := newHostPaths(t)
	s := h.store(t, false)
	src := h.source(t)
	require.NoError(t, os.Symlink(filepath.Join(h.outside, "secret"), filepath.Join(src, "secret")))
	p := backup(t, s, "vm1", "rp-1", src)
	assert.Equal(t, 1, p.Files, "the symlink is no file")

	target := filepath.Join(h.restores, "vm1")
	_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
	info, err := os.Lstat(filepath.Join(target, "secret"))
	require.NoError(t, err)
	assert.NotZero(t, info.Mode()&os.ModeSymlink, "restored as the symlink it was")
}

func TestRestoresStayInsideTheirRootsAndArePrivate(t *testing.T) {
	h := newHostPaths(t)
	s := h.store(t, false)
	src := h.source(t)
	p := backup(t, s, "vm1", "rp-1", src)
	require.NoError(t, os.Symlink(h.outside, filepath.Join(h.restores, "link-out")))

	for _, c := range []struct{ name, target, want string }{
		{"outside every root", filepath.Join(h.outside, "vm1"), "is outside this worker's restore roots"},
		{"dot-dot out of the root", h.restores + "/../outside/vm1", "is outside this worker's restore roots"},
		{"through a symlinked parent", filepath.Join(h.restores, "link-out", "vm1"), "leaves its root"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, c.target, nil)
			require.ErrorIs(t, err, ErrInvalidInput)
			assert.ErrorContains(t, err, c.want)
		})
	}
	entries, err := os.ReadDir(h.outside)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing was written outside the roots")

	inData, err := Open(context.Background(), Options{Location: filepath.Join(h.data, "store"), Password: testPassword, WorkDir: filepath.Join(h.data, "kopia"),
		SourceRoots: []string{h.sources}, RestoreRoots: []string{h.base}, Private: []string{h.data}})
	require.NoError(t, err)
	_, err = inData.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, filepath.Join(h.data, "x"), nil)
	assert.ErrorContains(t, err, "the worker's own directory", "never into the worker's data")

	target := filepath.Join(h.restores, "new", "parents", "vm1")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err)
	for _, d := range []string{target, filepath.Dir(target), filepath.Dir(filepath.Dir(target))} {
		info, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "%s is the worker user's alone", d)
	}
	sameTree(t, src, target)
}

func TestOwnersAreRestoredOnlyWhenTheWorkerIsToldTo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user")
	}
	h := newHostPaths(t)
	src := filepath.Join(h.sources, "vm1")
	require.NoError(t, os.MkdirAll(src, 0o755))
	file := filepath.Join(src, "data")
	require.NoError(t, os.WriteFile(file, []byte("theirs"), 0o644))
	require.NoError(t, os.Chown(file, 4242, 4242))
	for _, owners := range []bool{false, true} {
		s := h.store(t, owners)
		p := backup(t, s, "vm1", "rp-1", src)
		target := filepath.Join(h.restores, strings.ReplaceAll(t.Name(), "/", "-")+map[bool]string{false: "-mine", true: "-theirs"}[owners])
		_, err := s.Restore(context.Background(), "vault1", "vm1", "rp-1", p.SHA256, target, nil)
		require.NoError(t, err)
		uid, _ := ownerOf(t, filepath.Join(target, "data"))
		want := map[bool]int{false: 0, true: 4242}[owners]
		assert.Equal(t, want, uid, "owners restored: %v", owners)
	}
}

func ownerOf(t *testing.T, p string) (int, int) {
	info, err := os.Stat(p)
	require.NoError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestADirectoryOpenedThroughASwappedSymlinkIsCheckedWhereItIs: a path
// checked a moment ago may lead elsewhere once opened, if a directory of it
// was swapped for a symlink; the open handle is checked where it really is.
func TestADirectoryOpenedThroughASwappedSymlinkIsCheckedWhereItIs(t *testing.T) {
	h := newHostPaths(t)
	s := h.store(t, false)
	root, err := os.OpenRoot(h.base)
	require.NoError(t, err)
	defer root.Close()
	c := confined{root: root, realRoot: h.base}
	require.NoError(t, os.MkdirAll(filepath.Join(h.sources, "vm1"), 0o755))
	dir, err := root.OpenRoot("sources/vm1")
	require.NoError(t, err)
	assert.NoError(t, s.checkOpened(c, dir, "source"), "where it was checked")
	dir.Close()

	// Swapped: vm1 now leads into the worker's data directory.
	require.NoError(t, os.Remove(filepath.Join(h.sources, "vm1")))
	require.NoError(t, os.Symlink("worker-data", filepath.Join(h.sources, "vm1")))
	dir, err = root.OpenRoot("sources/vm1")
	require.NoError(t, err, "os.Root follows a symlink that stays inside it")
	defer dir.Close()
	assert.ErrorContains(t, s.checkOpened(c, dir, "source"), "the worker's own directory")
}
