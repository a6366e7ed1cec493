package store

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	kopiafs "github.com/kopia/kopia/fs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestASourceSwappedForASymlinkWhileReadIsNotFollowed: a host user who can
// write in a source replaces a directory and a file, after the backup
// listed them, with symlinks to a secret outside the source, and to another
// part of it. Nothing is read through them.
func TestASourceSwappedForASymlinkWhileReadIsNotFollowed(t *testing.T) {
	base := t.TempDir()
	src, outside := filepath.Join(base, "src"), filepath.Join(base, "outside")
	require.NoError(t, os.MkdirAll(filepath.Join(src, "dir"), 0o755))
	require.NoError(t, os.MkdirAll(outside, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "dir", "a"), []byte("mine"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "file"), []byte("mine"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "other"), []byte("another of mine"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("the host's secret"), 0o600))

	opened, err := os.OpenRoot(src)
	require.NoError(t, err)
	tree, root, err := hostTreeOn(opened, "src")
	require.NoError(t, err)
	defer tree.Close()
	ctx := context.Background()
	entries, err := kopiafs.GetAllEntries(ctx, root)
	require.NoError(t, err)
	byName := map[string]kopiafs.Entry{}
	for _, e := range entries {
		byName[e.Name()] = e
	}
	dir, file := byName["dir"].(kopiafs.Directory), byName["file"].(kopiafs.File)
	require.NotNil(t, dir)
	require.NotNil(t, file)

	// Swapped after the listing.
	require.NoError(t, os.RemoveAll(filepath.Join(src, "dir")))
	require.NoError(t, os.Symlink(outside, filepath.Join(src, "dir")))
	require.NoError(t, os.Remove(filepath.Join(src, "file")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(src, "file")))

	_, err = kopiafs.GetAllEntries(ctx, dir)
	assert.Error(t, err, "a directory swapped for a symlink out of the source is not listed")
	_, err = file.Open(ctx)
	assert.Error(t, err, "a file swapped for a symlink out of the source is not read")

	// Within the source: the same swap is caught as another entry.
	require.NoError(t, os.Remove(filepath.Join(src, "file")))
	require.NoError(t, os.Symlink("other", filepath.Join(src, "file")))
	_, err = file.Open(ctx)
	assert.ErrorContains(t, err, "was replaced while it was read")

	link, err := root.Child(ctx, "file")
	require.NoError(t, err)
	require.Implements(t, (*kopiafs.Symlink)(nil), link)
	target, err := link.(kopiafs.Symlink).Readlink(ctx)
	require.NoError(t, err)
	assert.Equal(t, "other", target)
	_, err = link.(kopiafs.Symlink).Resolve(ctx)
	assert.Error(t, err, "a symlink is never followed")

	f, err := byName["other"].(kopiafs.File).Open(ctx)
	require.NoError(t, err)
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	f.Close()
	assert.Equal(t, "another of mine", string(data))
}
