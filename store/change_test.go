package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"recoveryvault/internal/ransomware"
	"recoveryvault/workflows/protocol"
)

func TestEncryptionInPlaceIsMeasuredAsReplacedAndIncompressible(t *testing.T) {
	s := newDirStore(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 100, 20<<10)

	first := backup(t, s, "vm1", "rp-1", src)
	assert.Nil(t, first.Change, "an item's first backup has nothing to compare with")

	ransomware.Edit(t, src, 3)
	normal := backup(t, s, "vm1", "rp-2", src)
	require.NotNil(t, normal.Change)
	assert.Equal(t, protocol.Change{Files: 100, Changed: 3, BytesChanged: normal.Change.BytesChanged, Sampled: normal.Change.Sampled}, *normal.Change,
		"a normal day: three documents edited, none of it incompressible")
	assert.Positive(t, normal.Change.Sampled)

	ransomware.Encrypt(t, src, 60)
	hit := backup(t, s, "vm1", "rp-3", src)
	require.NotNil(t, hit.Change)
	c := *hit.Change
	assert.Equal(t, 100, c.Files)
	assert.Equal(t, 61, c.Added, "60 encrypted copies and the note")
	assert.Equal(t, 60, c.Deleted)
	assert.Equal(t, 60, c.Replaced)
	assert.Equal(t, ".locked", c.NewExtension)
	assert.Equal(t, 1, c.RansomNotes)
	assert.GreaterOrEqual(t, c.Incompressible*100/c.Sampled, int64(95), "encrypted bytes do not compress")
	assert.NotEmpty(t, protocol.AnomalyRule{}.Judge(c))
	assert.Empty(t, protocol.AnomalyRule{}.Judge(*normal.Change))

	again := backup(t, s, "vm1", "rp-3", src)
	assert.Equal(t, hit.Change, again.Change, "a retried backup answers the change it measured")
	for _, name := range []string{"report-000", "dept-"} {
		data, _ := json.Marshal(c)
		assert.NotContains(t, string(data), name, "no file's name is in the change")
	}
}

func TestALargeChangeOfCompressibleDataIsNotIncompressible(t *testing.T) {
	s := newDirStore(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 40, 64<<10)
	backup(t, s, "vm1", "rp-1", src)
	// Every document rewritten, as a reformat would.
	ransomware.Edit(t, src, 40)
	p := backup(t, s, "vm1", "rp-2", src)
	require.NotNil(t, p.Change)
	assert.Equal(t, 40, p.Change.Changed)
	assert.Zero(t, p.Change.Incompressible)
	assert.Empty(t, protocol.AnomalyRule{}.Judge(*p.Change), "a large legitimate change of compressible data is not suspect")
}

func TestSamplerSamplesTheStartOfEveryMegabyte(t *testing.T) {
	random := make([]byte, 3<<20+100)
	_, _ = rand.Read(random)
	s := &sampler{}
	for b := random; len(b) > 0; b = b[min(len(b), 7777):] {
		s.write(b[:min(len(b), 7777)])
	}
	s.done()
	assert.Equal(t, int64(3*sampleBlock), s.sampled, "4 KiB of each of the three whole megabytes; the last 100 bytes are too few")
	assert.Equal(t, s.sampled, s.incompressible)

	text := &sampler{}
	text.write([]byte(strings.Repeat("plain words compress well. ", 1000)))
	text.done()
	assert.Equal(t, int64(sampleBlock), text.sampled)
	assert.Zero(t, text.incompressible)
}

func TestAddedFilesCountForCompressionOnlyWhenTheyReplaceOthers(t *testing.T) {
	s := newDirStore(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 60, 20<<10)
	backup(t, s, "vm1", "rp-1", src)

	// New photos: data that does not compress, replacing nothing.
	photo := make([]byte, 256<<10)
	_, _ = rand.Read(photo)
	require.NoError(t, os.WriteFile(filepath.Join(src, "holiday.jpg"), photo, 0o644))
	p := backup(t, s, "vm1", "rp-2", src)
	assert.Equal(t, 1, p.Change.Added)
	assert.Zero(t, p.Change.Sampled, "a new photo is no change of what was there")

	// Encrypted in place, with a large file that compresses added to
	// dilute the samples: it is not counted.
	ransomware.Encrypt(t, src, 30)
	require.NoError(t, os.WriteFile(filepath.Join(src, "padding.txt"), bytes.Repeat([]byte("aaaa"), 1<<20), 0o644))
	p = backup(t, s, "vm1", "rp-3", src, CompareWith("rp-1"))
	assert.Equal(t, 30, p.Change.Replaced)
	assert.Equal(t, p.Change.Sampled, p.Change.Incompressible, "only the encrypted copies are sampled")
	require.NotNil(t, p.Since)
	assert.Equal(t, 60, p.Since.Files, "measured against rp-1")
	assert.Equal(t, 33, p.Since.Added, "the photo, the note, the padding and the 30 copies since rp-1")
	assert.Equal(t, 30, p.Since.Replaced)
}

// Ransomware that keeps each file's size, mode and times would leave a
// backup that trusts those alone holding the old bytes under a new point:
// the change time it cannot keep makes the backup read the file.
func TestEncryptionThatKeepsSizeAndTimesIsReadAndCaught(t *testing.T) {
	ctx := context.Background()
	s := newDirStore(t)
	src := t.TempDir()
	ransomware.WriteDocuments(t, src, 100, 20<<10)
	time.Sleep(changeTimeMargin + 100*time.Millisecond)
	backup(t, s, "vm1", "rp-1", src)

	for _, f := range []string{"dept-0/report-000.docx", "dept-1/report-001.docx"} {
		require.NoError(t, os.Chmod(filepath.Join(src, f), 0o600))
		require.NoError(t, os.Chmod(filepath.Join(src, f), 0o644))
	}
	var read int64
	quiet, err := s.Backup(ctx, "vault1", "vm1", "rp-2", src, time.Time{}, func(n int64) { read = n })
	require.NoError(t, err)
	assert.Equal(t, int64(2*20<<10), read, "the two files touched are read again, no other")
	require.NotNil(t, quiet.Change)
	assert.Zero(t, quiet.Change.Changed, "touched, not changed")

	ransomware.EncryptCovertly(t, src, 60)
	hit := backup(t, s, "vm1", "rp-3", src)
	require.NotNil(t, hit.Change)
	assert.Equal(t, 60, hit.Change.Changed, "every file encrypted in place is changed")
	assert.GreaterOrEqual(t, hit.Change.Incompressible*100/max(hit.Change.Sampled, 1), int64(95))
	assert.NotEmpty(t, protocol.AnomalyRule{}.Judge(*hit.Change))

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(ctx, "vault1", "vm1", "rp-3", hit.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
	_, err = s.Verify(ctx, "vault1", "vm1", "rp-3", hit.SHA256, nil)
	require.NoError(t, err, "the point holds what the source held")
}

func TestAKeptFileIsHashedAgainOnlyWhenItsInodeChangedSinceTheLastPoint(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "a"), []byte("now"), 0o644))
	root, err := os.OpenRoot(src)
	require.NoError(t, err)
	defer root.Close()
	info, err := os.Stat(filepath.Join(src, "a"))
	require.NoError(t, err)
	changed := changeTime(info.Sys())
	require.False(t, changed.IsZero(), "the kernel's change time is read")
	later := changed.Add(time.Hour)

	// complete as a backup at now would, after a point started at started
	// that holds "a" with hash lastSHA.
	complete := func(started, now time.Time, lastSHA string) (string, error) {
		tree := newSourceTree(false, nil)
		e := newEntry("a", EntryFile, info.Mode().Perm(), info.ModTime())
		e.Size, e.changed = info.Size(), changed
		tree.record(e)
		last := previousPoint{started: started, list: map[string]fileEntry{"a": {Path: "a", Type: EntryFile, Mode: e.Mode, Size: e.Size, ModTime: e.ModTime, SHA256: lastSHA}}}
		entries, err := tree.complete(context.Background(), root, last, true, now)
		if err != nil {
			return "", err
		}
		return entries[0].SHA256, nil
	}
	sum, err := complete(changed.Add(changeTimeMargin+time.Millisecond), later, "sha-of-the-last-point")
	require.NoError(t, err)
	assert.Equal(t, "sha-of-the-last-point", sum, "untouched since the last point started: trusted, not read")

	for name, started := range map[string]time.Time{
		"touched after the last point started":   changed.Add(-time.Hour),
		"touched just before, on a coarse clock": changed.Add(changeTimeMargin / 2),
	} {
		_, err = complete(started, later, "sha-of-the-last-point")
		require.ErrorIs(t, err, errStale, name)
	}
	_, err = complete(later, changed, "sha-of-the-last-point")
	require.ErrorIs(t, err, errStale, "a last point started in the future vouches for nothing")

	now, _, err := hashFile(context.Background(), root, "a", nil)
	require.NoError(t, err)
	sum, err = complete(changed.Add(-time.Hour), later, now)
	require.NoError(t, err)
	assert.Equal(t, now, sum, "touched since, the same bytes: kept")
}

// A symlink pointed elsewhere, its length and time put back, is what the
// point records, not the target it had.
func TestASymlinkRetargetedUnderKeptTimesIsRecordedAsItIs(t *testing.T) {
	s := newDirStore(t)
	src := t.TempDir()
	link := filepath.Join(src, "current")
	require.NoError(t, os.Symlink("release-1", link))
	info, err := os.Lstat(link)
	require.NoError(t, err)
	backup(t, s, "vm1", "rp-1", src)

	require.NoError(t, os.Remove(link))
	require.NoError(t, os.Symlink("release-2", link))
	kept := unix.NsecToTimespec(info.ModTime().UnixNano())
	require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, link, []unix.Timespec{kept, kept}, unix.AT_SYMLINK_NOFOLLOW))
	p := backup(t, s, "vm1", "rp-2", src)

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-2", p.SHA256, target, nil)
	require.NoError(t, err)
	got, err := os.Readlink(filepath.Join(target, "current"))
	require.NoError(t, err)
	assert.Equal(t, "release-2", got)
}
