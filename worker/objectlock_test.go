package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/backupworker"
	"recoveryvault/internal/s3test"
	"recoveryvault/internal/storetest"
	"recoveryvault/workflows/protocol"
)

// currentObjects are the objects an item's repository is made of now, in
// the bucket: not what kopia itself deleted, which the store buried under
// a tombstone ("rv-tombstone/<object>.<HMAC>"), nor the tombstones.
func currentObjects(t *testing.T, srv *s3test.Server, itemID string) []minio.ObjectInfo {
	t.Helper()
	prefix := "items/vault1/" + itemID + "/"
	var all []minio.ObjectInfo
	buried := map[string]bool{}
	for o := range srv.Client.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		require.NoError(t, o.Err)
		if name, ok := strings.CutPrefix(o.Key, prefix+"rv-tombstone/"); ok {
			buried[prefix+name[:strings.LastIndexByte(name, '.')]] = true
			continue
		}
		all = append(all, o)
	}
	var objs []minio.ObjectInfo
	for _, o := range all {
		if o.IsLatest && !o.IsDeleteMarker && !buried[o.Key] {
			objs = append(objs, o)
		}
	}
	return objs
}

// refusedDeletes tries, with the worker's own credentials, to delete every
// object of an item, and counts the refusals.
func refusedDeletes(t *testing.T, srv *s3test.Server, objs []minio.ObjectInfo) int {
	t.Helper()
	refused := 0
	for _, o := range objs {
		err := srv.Client.RemoveObject(context.Background(), "backups", o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID})
		if minio.ToErrorResponse(err).Code == "AccessDenied" {
			refused++
		}
	}
	return refused
}

// lockActivities are the Lock activities an item scheduled, with their
// inputs, in order.
func lockActivities(t *testing.T, c client.Client, id string) []string {
	t.Helper()
	var inputs []string
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == protocol.ActivityLock {
			inputs = append(inputs, string(a.GetInput().GetPayloads()[0].GetData()))
		}
	}
	return inputs
}

// TestObjectLockFollowsTheItemOnABucket: items on a bucket with object
// lock, their workflows on a real server. A soft-deleted item's objects
// cannot be deleted before its deadline, with the worker's own
// credentials, and are gone after the purge; an undelete resumes the
// rolling lock, so they outlive the deadline that no longer applies.
func TestObjectLockFollowsTheItemOnABucket(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "backups", true)
	srv.Setenv(t)
	_, c := realServer(t)
	window := 8 * time.Second
	w := backupworker.New(c, storetest.At(t, "s3://backups/items"), nil, protocol.Settings{SoftDeleteRetention: window, Dev: true})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	src := writeItemSource(t)

	doomed := protect(t, c, "vm1", src)
	st := mustUpdate(t, c, doomed, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	deadline := deleteTime(st).Add(window)
	require.Eventually(t, func() bool { return len(lockActivities(t, c, doomed)) == 1 }, 20*time.Second, 100*time.Millisecond,
		"the delete locks the objects until the deadline")
	assert.Contains(t, lockActivities(t, c, doomed)[0], `"until":"`+deadline.UTC().Format("2006-01-02T15:04:05"))
	// The lock is on once the activity has run.
	require.Eventually(t, func() bool {
		objs := currentObjects(t, srv, "vm1")
		return len(objs) > 0 && refusedDeletes(t, srv, objs) == len(objs)
	}, 20*time.Second, 200*time.Millisecond, "no object of the soft-deleted item can be deleted before its deadline")
	require.True(t, time.Now().Before(deadline), "checked before the deadline")
	require.Eventually(t, func() bool {
		return query(t, c, doomed).ObjectsLockedUntil == deadline.UTC().Format(time.RFC3339)
	}, 10*time.Second, 100*time.Millisecond, "the status says until when the objects are locked")
	assert.Equal(t, "object lock COMPLIANCE", query(t, c, doomed).ObjectLock)

	kept := protect(t, c, "vm2", src)
	st = mustUpdate(t, c, kept, protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	oldDeadline := deleteTime(st).Add(window)
	mustUpdate(t, c, kept, protocol.UpdateUndelete, protocol.Request{RequestedBy: "alice"})

	final := purged(t, c, doomed, 60*time.Second)
	assert.Equal(t, protocol.Purged, final.ProtectionState)
	var left []string
	for o := range srv.Client.ListObjects(context.Background(), "backups", minio.ListObjectsOptions{Prefix: "items/vault1/vm1/", Recursive: true, WithVersions: true}) {
		left = append(left, o.Key)
	}
	assert.Empty(t, left, "after the purge no object, version or delete marker of the item is left")

	// Past the deadline the undelete cancelled, the rolling lock has moved
	// on: the stopped item's objects are still locked.
	time.Sleep(time.Until(oldDeadline) + window/2)
	rolls := 0
	for _, in := range lockActivities(t, c, kept) {
		if !strings.Contains(in, `"until"`) {
			rolls++
		}
	}
	assert.Positive(t, rolls, "the rolling lock resumed after the undelete")
	objs := currentObjects(t, srv, "vm2")
	require.NotEmpty(t, objs)
	assert.Equal(t, len(objs), refusedDeletes(t, srv, objs), "still locked after the old deadline")
	assert.Equal(t, protocol.ProtectionStopped, query(t, c, kept).ProtectionState)
}
