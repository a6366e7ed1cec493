package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/aes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/encryption"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/treediff"
)

// scan searches an item's whole raw store for markers: every object, every
// version, as stored, and every content of every pack decrypted with the
// repository's key and decompressed, those no index refers to any more
// included. It returns where each marker was found.
func scan(t *testing.T, s *Store, vaultID, itemID string, markers ...string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	hits := map[string][]string{}
	find := func(where string, data []byte) {
		for _, m := range markers {
			if bytes.Contains(data, []byte(m)) {
				hits[m] = append(hits[m], where)
			}
		}
	}
	objects := 0
	require.NoError(t, s.backend.objects(ctx, itemPrefix(vaultID, itemID), func(name string, data []byte) error {
		objects++
		find(name, data)
		return nil
	}))
	if objects == 0 {
		return hits
	}
	r, err := s.open(ctx, vaultID, itemID, time.Time{}, false)
	require.NoError(t, err)
	enc := r.FormatManager().Encryptor()
	packs, err := blob.ListAllBlobs(ctx, r.BlobReader(), "")
	require.NoError(t, err)
	require.NoError(t, repo.DirectWriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "scan"}, func(ctx context.Context, w repo.DirectRepositoryWriter) error {
		for _, p := range packs {
			if id := string(p.BlobID); !strings.HasPrefix(id, "p") && !strings.HasPrefix(id, "q") {
				continue
			}
			var raw bytes.Buffer
			if err := r.BlobReader().GetBlob(ctx, p.BlobID, 0, -1, &rawBuffer{&raw}); err != nil {
				return err
			}
			contents, err := w.ContentManager().RecoverIndexFromPackBlob(ctx, p.BlobID, p.Length, false)
			if err != nil {
				return err
			}
			for _, c := range contents {
				h := c.ContentID.Hash()
				plain, err := decrypt(enc, raw.Bytes()[c.PackOffset:c.PackOffset+c.PackedLength], h[len(h)-aes.BlockSize:])
				if err != nil {
					return fmt.Errorf("decrypt %s in %s: %w", c.ContentID, p.BlobID, err)
				}
				if c.CompressionHeaderID != 0 {
					var out bytes.Buffer
					if err := compression.ByHeaderID[c.CompressionHeaderID].Decompress(&out, bytes.NewReader(plain), true); err != nil {
						return err
					}
					plain = out.Bytes()
				}
				if zr, err := gzip.NewReader(bytes.NewReader(plain)); err == nil { // manifests
					if b, err := io.ReadAll(zr); err == nil {
						plain = b
					}
				}
				find(fmt.Sprintf("%s/%s", p.BlobID, c.ContentID), plain)
			}
		}
		return nil
	}))
	return hits
}

type rawBuffer struct{ *bytes.Buffer }

func (b *rawBuffer) Length() int { return b.Len() }

// decrypt calls the repository's decryption, whose buffer types kopia keeps
// internal, by reflection: enc.Decrypt(gather.Bytes{Slices}, iv, out).
func decrypt(enc encryption.Encryptor, ciphertext, iv []byte) ([]byte, error) {
	m := reflect.ValueOf(enc).MethodByName("Decrypt")
	in := reflect.New(m.Type().In(0)).Elem()
	in.FieldByName("Slices").Set(reflect.ValueOf([][]byte{ciphertext}))
	out := reflect.New(m.Type().In(2).Elem())
	if err := m.Call([]reflect.Value{in, reflect.ValueOf(iv), out})[0].Interface(); err != nil {
		return nil, err.(error)
	}
	return out.MethodByName("ToByteSlice").Call(nil)[0].Bytes(), nil
}

// TestScanFindsMarkersInTheEncryptedStore: the scan can fail, so its
// silence below means something. Nothing is stored in the clear.
func TestScanFindsMarkersInTheEncryptedStore(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "secret.txt"), []byte("SCAN-MARKER-2718"), 0o600))
	s := newDirStore(t)
	backup(t, s, "vm1", "rp-1", src)
	hits := scan(t, s, "vault1", "vm1", "SCAN-MARKER-2718", "secret.txt", "rp-1")
	require.NotEmpty(t, hits["SCAN-MARKER-2718"], "the file's content is found once decrypted")
	require.NotEmpty(t, hits["secret.txt"], "its name too")
	require.NotEmpty(t, hits["rp-1"], "the recovery point's tag too")
	var clear []string
	require.NoError(t, s.backend.objects(context.Background(), itemPrefix("vault1", "vm1"), func(name string, data []byte) error {
		if bytes.Contains(data, []byte("SCAN-MARKER-2718")) {
			clear = append(clear, name)
		}
		return nil
	}))
	assert.Empty(t, clear, "encrypted at rest")
}

// TestCollectionRemovesTheUnsharedDataOfExpiredPoints: once its point is
// collected, a marker only it held is nowhere in the store, decrypted with
// the key; content shared with the live point stays, and that point
// restores.
func TestCollectionRemovesTheUnsharedDataOfExpiredPoints(t *testing.T) {
	src := treediff.WriteSample(t)
	require.NoError(t, os.WriteFile(filepath.Join(src, "shared.txt"), []byte("SHARED-MARKER-1618"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "ledger.txt"), []byte(strings.Repeat("entry\n", 1000)+"EXPIRED-MARKER-3141\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "NAME-MARKER-1414.txt"), []byte("a file whose name is the secret"), 0o644))
	s := newDirStore(t)
	backup(t, s, "vm1", "rp-1", src)
	require.NoError(t, os.WriteFile(filepath.Join(src, "ledger.txt"), []byte(strings.Repeat("entry\n", 1000)), 0o644))
	require.NoError(t, os.Remove(filepath.Join(src, "NAME-MARKER-1414.txt")))
	live := backup(t, s, "vm1", "rp-2", src)

	markers := []string{"EXPIRED-MARKER-3141", "NAME-MARKER-1414", "SHARED-MARKER-1618"}
	before := scan(t, s, "vault1", "vm1", markers...)
	require.NotEmpty(t, before["EXPIRED-MARKER-3141"], "there before the collection")
	require.NotEmpty(t, before["NAME-MARKER-1414"])

	n, err := s.Delete(context.Background(), "vault1", "vm1", []string{"rp-1"}, time.Time{}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	after := scan(t, s, "vault1", "vm1", markers...)
	assert.Empty(t, after["EXPIRED-MARKER-3141"], "the expired point's own data is gone")
	assert.Empty(t, after["NAME-MARKER-1414"], "and its names")
	assert.NotEmpty(t, after["SHARED-MARKER-1618"], "what the live point shares stays")

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm1", "rp-2", live.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

// TestPurgeLeavesNothingOfTheItem: after the purge no object of the item is
// left; another item of the vault keeps all of its data.
func TestPurgeLeavesNothingOfTheItem(t *testing.T) {
	src := treediff.WriteSample(t)
	require.NoError(t, os.WriteFile(filepath.Join(src, "secret.txt"), []byte("PURGE-MARKER-6626"), 0o600))
	s := newDirStore(t)
	backup(t, s, "vm1", "rp-1", src)
	other := backup(t, s, "vm2", "rp-1", src)
	require.NotEmpty(t, scan(t, s, "vault1", "vm1", "PURGE-MARKER-6626")["PURGE-MARKER-6626"])

	require.NoError(t, s.Purge(context.Background(), "vault1", "vm1", nil))
	assert.Empty(t, scan(t, s, "vault1", "vm1", "PURGE-MARKER-6626"), "nothing of the purged item")
	_, err := os.Stat(filepath.Join(s.backend.(*directory).root, "vault1", "vm1"))
	assert.True(t, os.IsNotExist(err))
	left, err := filepath.Glob(filepath.Join(s.opts.WorkDir, "vault1", "vm1*"))
	require.NoError(t, err)
	assert.Empty(t, left, "nor anything of it in the worker's own directory")
	kept, err := filepath.Glob(filepath.Join(s.opts.WorkDir, "vault1", "vm2*"))
	require.NoError(t, err)
	assert.NotEmpty(t, kept, "the other item's connection stays")

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(context.Background(), "vault1", "vm2", "rp-1", other.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}
