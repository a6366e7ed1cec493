package store

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/s3test"
	"recoveryvault/internal/treediff"
)

// newS3Store is a store on a bucket of a real S3 server, with object lock
// when locked.
func newS3Store(t *testing.T, locked bool, mode string) (*Store, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	srv.Bucket(t, "backups", locked)
	srv.Setenv(t)
	s, err := Open(context.Background(), Options{Location: "s3://backups/recovery", Password: testPassword, WorkDir: t.TempDir(), LockMode: mode,
		SourceRoots: []string{os.TempDir()}, RestoreRoots: []string{os.TempDir()}})
	require.NoError(t, err)
	return s, srv
}

// versions lists every version of every object of an item, as the bucket
// holds them.
func versions(t *testing.T, srv *s3test.Server, item string) []minio.ObjectInfo {
	t.Helper()
	var all []minio.ObjectInfo
	for obj := range srv.Client.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{
		Prefix: "recovery/vault1/" + item + "/", Recursive: true, WithVersions: true,
	}) {
		require.NoError(t, obj.Err)
		all = append(all, obj)
	}
	return all
}

func TestS3StoreBacksUpRestoresCollectsAndPurges(t *testing.T) {
	s, srv := newS3Store(t, false, "")
	assert.Equal(t, "s3://backups/recovery/ (no object lock)", s.String())
	src := treediff.WriteSample(t)
	ctx := context.Background()
	backup(t, s, "vm1", "rp-1", src)
	require.NoError(t, os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"cpu": 8}`), 0o640))
	later := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(src, "config.json"), later, later))
	p2 := backup(t, s, "vm1", "rp-2", src)

	target := filepath.Join(t.TempDir(), "out")
	_, err := s.Restore(ctx, "vault1", "vm1", "rp-2", p2.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)

	n, err := s.Delete(ctx, "vault1", "vm1", []string{"rp-1"}, time.Time{}, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	ids, err := s.List(ctx, "vault1", "vm1")
	require.NoError(t, err)
	assert.Equal(t, []string{"rp-2"}, ids)

	require.NoError(t, s.Purge(ctx, "vault1", "vm1", nil))
	assert.Empty(t, versions(t, srv, "vm1"), "no object, no version, no delete marker of the item is left")
}

// TestObjectLockKeepsASoftDeletedItemUntilItsDeadline: with the worker's
// own credentials, no version of any object of a soft-deleted item can be
// deleted before its deadline, and an overwrite leaves the locked version
// as it was; at the deadline the purge takes everything.
func TestObjectLockKeepsASoftDeletedItemUntilItsDeadline(t *testing.T) {
	s, srv := newS3Store(t, true, "")
	assert.Equal(t, "s3://backups/recovery/ (object lock COMPLIANCE)", s.String())
	ctx := context.Background()
	src := treediff.WriteSample(t)
	// The rolling retention: now plus the window, which tests make short.
	_, err := s.Backup(ctx, "vault1", "vm1", "rp-1", src, time.Now().Add(2*time.Second), nil)
	require.NoError(t, err)
	// Soft-deleted: every object held exactly until the deadline.
	deadline := time.Now().Add(5 * time.Second)
	tamper, err := s.Lock(ctx, "vault1", "vm1", deadline, nil)
	require.NoError(t, err)
	assert.Empty(t, tamper.String(), "nothing was tampered with")

	// The objects the item is made of: what kopia deleted itself (session
	// markers, superseded indexes), buried by the store, is no part of it.
	o, err := s.backend.(*bucket).itemObjects(ctx, itemPrefix("vault1", "vm1"))
	require.NoError(t, err)
	var all []minio.ObjectInfo
	for key, vs := range o.versions {
		for _, v := range vs {
			if o.live(key) && v.IsLatest && !v.IsDeleteMarker {
				all = append(all, v)
			}
		}
	}
	require.NotEmpty(t, all)
	for _, v := range all {
		err := srv.Client.RemoveObject(ctx, "backups", v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: true})
		assert.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code, "deleting %s before the deadline is refused", v.Key)
	}
	pack := all[indexOf(all, func(v minio.ObjectInfo) bool { return strings.Contains(v.Key, "/p") })]
	original := get(t, srv, pack.Key, pack.VersionID)
	_, err = srv.Client.PutObject(ctx, "backups", pack.Key, bytes.NewReader([]byte("ransom")), 6, minio.PutObjectOptions{})
	require.NoError(t, err, "S3 versioning keeps an overwrite as a new version")
	assert.Equal(t, original, get(t, srv, pack.Key, pack.VersionID), "the locked version is as it was")
	err = srv.Client.RemoveObject(ctx, "backups", pack.Key, minio.RemoveObjectOptions{VersionID: pack.VersionID})
	assert.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code)

	assert.ErrorContains(t, s.Purge(ctx, "vault1", "vm1", nil), "object lock", "not before the deadline")
	assert.NotEmpty(t, versions(t, srv, "vm1"))
	time.Sleep(time.Until(deadline) + 500*time.Millisecond)
	require.NoError(t, s.Purge(ctx, "vault1", "vm1", nil), "at the deadline the purge takes everything")
	assert.Empty(t, versions(t, srv, "vm1"))
}

func get(t *testing.T, srv *s3test.Server, key, version string) []byte {
	t.Helper()
	r, err := srv.Client.GetObject(context.Background(), "backups", key, minio.GetObjectOptions{VersionID: version})
	require.NoError(t, err)
	defer r.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(r)
	require.NoError(t, err)
	return buf.Bytes()
}

func indexOf(all []minio.ObjectInfo, f func(minio.ObjectInfo) bool) int {
	for i, v := range all {
		if f(v) {
			return i
		}
	}
	return -1
}

// TestCollectionOnALockedBucketSweepsOnceTheLocksPass: a collected point's
// objects stay, locked, until their retention passes; the next collection
// then removes them, and a marker only that point held is nowhere.
func TestCollectionOnALockedBucketSweepsOnceTheLocksPass(t *testing.T) {
	s, _ := newS3Store(t, true, "")
	ctx := context.Background()
	src := treediff.WriteSample(t)
	require.NoError(t, os.WriteFile(filepath.Join(src, "ledger.txt"), []byte("S3-EXPIRED-MARKER-5772"), 0o644))
	lock := func() time.Time { return time.Now().Add(2 * time.Second) }
	_, err := s.Backup(ctx, "vault1", "vm1", "rp-1", src, lock(), nil)
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(src, "ledger.txt")))
	live, err := s.Backup(ctx, "vault1", "vm1", "rp-2", src, lock(), nil)
	require.NoError(t, err)

	_, err = s.Delete(ctx, "vault1", "vm1", []string{"rp-1"}, lock(), nil)
	require.NoError(t, err)
	assert.Empty(t, scan(t, s, "vault1", "vm1", "S3-EXPIRED-MARKER-5772"), "no current object holds it")
	assert.NotEmpty(t, deleted(t, s), "what the collection deleted stays, under lock")
	time.Sleep(2500 * time.Millisecond)
	_, err = s.Delete(ctx, "vault1", "vm1", nil, lock(), nil)
	require.NoError(t, err)
	assert.Empty(t, deleted(t, s), "and goes once its lock has passed")

	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(ctx, "vault1", "vm1", "rp-2", live.SHA256, target, nil)
	require.NoError(t, err)
	sameTree(t, src, target)
}

// deleted are the versions of objects kopia deleted that the bucket keeps:
// what the store's genuine tombstones bury.
func deleted(t *testing.T, s *Store) []string {
	t.Helper()
	o, err := s.backend.(*bucket).itemObjects(context.Background(), itemPrefix("vault1", "vm1"))
	require.NoError(t, err)
	var kept []string
	for key, vs := range o.versions {
		if o.live(key) {
			continue
		}
		for _, v := range vs {
			if !v.IsDeleteMarker {
				kept = append(kept, v.Key)
			}
		}
	}
	return kept
}

func TestS3LocationsAreCheckedAtOpen(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	_, err := Open(context.Background(), Options{Location: "s3://missing/x", Password: testPassword, WorkDir: t.TempDir()})
	assert.ErrorContains(t, err, "bucket missing does not exist at "+srv.Endpoint)
	_, err = Open(context.Background(), Options{Location: "s3:///x", Password: testPassword, WorkDir: t.TempDir()})
	assert.ErrorContains(t, err, `is not s3://BUCKET/PREFIX`)
	_, err = Open(context.Background(), Options{Location: t.TempDir(), Password: testPassword, WorkDir: t.TempDir(), LockMode: "forever"})
	assert.ErrorContains(t, err, `object-lock mode "forever" is not known`)
}

// TestTheBucketsLockStatusIsKnownOrTheStoreRefusesToOpen: a worker that
// cannot read whether its bucket locks never runs as if it did not, unless
// it is told to; a bucket without lock is known to have none.
func TestTheBucketsLockStatusIsKnownOrTheStoreRefusesToOpen(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "locked", true)
	srv.Bucket(t, "plain", false)
	srv.Setenv(t)
	open := func(location string, noLock bool) (*Store, error) {
		return Open(context.Background(), Options{Location: location, Password: testPassword, WorkDir: t.TempDir(), NoObjectLock: noLock})
	}
	s, err := open("s3://locked/x", false)
	require.NoError(t, err)
	assert.True(t, s.Locks())
	assert.Equal(t, "object lock COMPLIANCE", s.ObjectLock())
	s, err = open("s3://plain/x", false)
	require.NoError(t, err, "a bucket without object lock is known to have none")
	assert.False(t, s.Locks())
	assert.Contains(t, s.String(), "(no object lock)")
	assert.Equal(t, "none: the bucket has no object lock", s.ObjectLock())
	s, err = open("s3://locked/x", true)
	require.NoError(t, err)
	assert.False(t, s.Locks())
	assert.Contains(t, s.String(), "object lock not used: the worker runs with --no-object-lock")
	assert.Equal(t, "object lock not used: the worker runs with --no-object-lock", s.ObjectLock(), "an item's status says so")

	// The same server behind a proxy that refuses to say whether the
	// bucket locks, as a policy without s3:GetBucketObjectLockConfiguration
	// would.
	target, err := url.Parse(srv.Endpoint)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	hidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("object-lock") {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer hidden.Close()
	t.Setenv("AWS_ENDPOINT_URL_S3", hidden.URL)
	_, err = open("s3://locked/x", false)
	assert.ErrorContains(t, err, "the object-lock status of bucket locked cannot be read")
	assert.ErrorContains(t, err, "--no-object-lock")
	s, err = open("s3://locked/x", true)
	require.NoError(t, err, "told to, it runs without lock")
	assert.False(t, s.Locks())
	assert.Contains(t, s.String(), "its object-lock status could not be read")
}

// TestDeleteMarkersHideNothingForLongAndForgedTombstonesBuryNothing is the
// attack of someone holding the workers' S3 credentials: a plain DELETE of
// every object adds delete markers over them, a forged tombstone claims a
// pack is garbage, and a pack is overwritten. The next lock keeps every
// hidden version, removes the markers and reports all of it; the sweep
// deletes nothing of the item; the point restores identical.
func TestDeleteMarkersHideNothingForLongAndForgedTombstonesBuryNothing(t *testing.T) {
	s, srv := newS3Store(t, true, "")
	ctx := context.Background()
	src := treediff.WriteSample(t)
	p, err := s.Backup(ctx, "vault1", "vm1", "rp-1", src, time.Now().Add(2*time.Second), nil)
	require.NoError(t, err)

	o, err := s.backend.(*bucket).itemObjects(ctx, itemPrefix("vault1", "vm1"))
	require.NoError(t, err)
	var live []string
	for key := range o.versions {
		if o.live(key) {
			live = append(live, key)
		}
	}
	require.NotEmpty(t, live)
	pack := ""
	for _, key := range live {
		if strings.Contains(key, "/p") {
			pack = key
		}
		require.NoError(t, srv.Client.RemoveObject(ctx, "backups", key, minio.RemoveObjectOptions{}), "a plain DELETE is allowed and adds a marker")
	}
	var tomb string
	for _, v := range o.tombs {
		tomb = v.Key
	}
	require.NotEmpty(t, tomb, "the backup's session blob was buried")
	require.NoError(t, srv.Client.RemoveObject(ctx, "backups", tomb, minio.RemoveObjectOptions{}), "a marker on a tombstone too")
	forged := "recovery/vault1/vm1/" + tombstoneDir + strings.TrimPrefix(pack, "recovery/vault1/vm1/") + "." + strings.Repeat("0", 64)
	_, err = srv.Client.PutObject(ctx, "backups", forged, bytes.NewReader(nil), 0, minio.PutObjectOptions{})
	require.NoError(t, err)
	first := filepath.Join(t.TempDir(), "first")
	r, err := s.Restore(ctx, "vault1", "vm1", "rp-1", p.SHA256, first, nil)
	require.NoError(t, err, "a restore removes the markers first, and restores whole")
	assert.ElementsMatch(t, append(slices.Clone(live), tomb), r.Unhidden, "and says what was hidden")
	sameTree(t, src, first)

	// Hidden again: the next lock finds them too.
	for _, key := range append(slices.Clone(live), tomb) {
		require.NoError(t, srv.Client.RemoveObject(ctx, "backups", key, minio.RemoveObjectOptions{}))
	}
	until := time.Now().Add(6 * time.Second)
	tamper, err := s.Lock(ctx, "vault1", "vm1", until, nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, append(live, tomb), tamper.Markers, "every marker is found and removed, the tombstone's too")
	assert.Contains(t, tamper.String(), "hidden under delete markers, which were removed")

	time.Sleep(2500 * time.Millisecond) // past the backup's own lock
	for _, key := range live {
		for _, v := range versionsOf(t, srv, key) {
			err := srv.Client.RemoveObject(ctx, "backups", key, minio.RemoveObjectOptions{VersionID: v.VersionID})
			assert.Equal(t, "AccessDenied", minio.ToErrorResponse(err).Code, "%s was kept by the lock though hidden", key)
		}
	}
	_, err = s.Delete(ctx, "vault1", "vm1", nil, until, nil)
	require.NoError(t, err, "a collection and its sweep")
	target := filepath.Join(t.TempDir(), "out")
	_, err = s.Restore(ctx, "vault1", "vm1", "rp-1", p.SHA256, target, nil)
	require.NoError(t, err, "the forged tombstone buried nothing; the point restores")
	sameTree(t, src, target)

	_, err = srv.Client.PutObject(ctx, "backups", pack, bytes.NewReader([]byte("ransom")), 6, minio.PutObjectOptions{})
	require.NoError(t, err)
	tamper, err = s.Lock(ctx, "vault1", "vm1", until, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{pack}, tamper.Overwritten, "an overwritten pack is found")
}

func versionsOf(t *testing.T, srv *s3test.Server, key string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for obj := range srv.Client.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		require.NoError(t, obj.Err)
		if obj.Key == key {
			out = append(out, obj)
		}
	}
	return out
}
