package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/content/indexblob"
	"github.com/kopia/kopia/repo/maintenance"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotgc"
)

// Delete removes recovery points of an item, and with them every byte only
// they held: what a live point shares stays. Removing one that is already
// gone succeeds, so a retried garbage collection is harmless. Objects
// kopia writes meanwhile are locked until lockUntil where the store locks;
// on a bucket with object lock the versions it deletes go once their lock
// has passed, at this or a later collection.
//
// It runs kopia's garbage collection with no safety delays, which is right
// only because nothing else writes to the item's repository meanwhile: its
// workflow runs one store activity at a time.
func (s *Store) Delete(ctx context.Context, vaultID, itemID string, ids []string, lockUntil time.Time, progress Progress) (int, error) {
	if err := checkNames(vaultID, itemID, ids...); err != nil {
		return 0, err
	}
	defer s.lockItem(vaultID, itemID)()
	if _, err := s.unhide(ctx, vaultID, itemID); err != nil {
		return 0, err
	}
	r, err := s.open(ctx, vaultID, itemID, lockUntil, false)
	if errors.Is(err, errNoRepository) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// A point is two snapshots: its tree and its file list.
	var doomed, kept []manifest.ID
	removed := 0
	for _, src := range []snapshot.SourceInfo{sourceOf(vaultID, itemID), listSource(vaultID, itemID)} {
		points, err := snapshot.ListSnapshots(ctx, r, src)
		if err != nil {
			return 0, fmt.Errorf("list the recovery points of item %s: %w", itemID, err)
		}
		for _, m := range points {
			if !slices.Contains(ids, m.Tags[labelPoint]) {
				kept = append(kept, m.ID)
				continue
			}
			doomed = append(doomed, m.ID)
			if src == sourceOf(vaultID, itemID) {
				removed++
			}
		}
	}
	if len(doomed) > 0 {
		err := repo.DirectWriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "remove expired recovery points"},
			func(ctx context.Context, w repo.DirectRepositoryWriter) error {
				for _, id := range doomed {
					if err := w.DeleteManifest(ctx, id); err != nil {
						return err
					}
				}
				return nil
			})
		if err != nil {
			return 0, fmt.Errorf("remove recovery points of item %s: %w", itemID, err)
		}
	}
	if progress != nil {
		progress(int64(removed))
	}
	if err := collect(ctx, r, kept); err != nil {
		return removed, fmt.Errorf("collect the data of removed recovery points of item %s: %w", itemID, err)
	}
	if err := s.backend.sweep(ctx, itemPrefix(vaultID, itemID)); err != nil {
		return removed, fmt.Errorf("sweep deleted objects of item %s: %w", itemID, err)
	}
	return removed, nil
}

// collect deletes from the repository every byte no snapshot refers to.
// Kopia's own maintenance keeps such bytes for a while, in packs it judges
// full enough to leave alone; here every pack that holds anything
// unreferenced is rewritten without it. Kept are the snapshots that must
// survive: if any of them is not seen, nothing is collected, since a
// collection that missed a snapshot would delete its data.
func collect(ctx context.Context, r repo.DirectRepository, kept []manifest.ID) error {
	return repo.DirectWriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "collect"},
		func(ctx context.Context, w repo.DirectRepositoryWriter) error {
			seen, err := snapshot.ListSnapshotManifests(ctx, w, nil, nil)
			if err != nil {
				return err
			}
			for _, id := range kept {
				if !slices.Contains(seen, id) {
					return fmt.Errorf("snapshot %s is not seen by the collection: nothing was collected, try again", id)
				}
			}
			return maintenance.RunExclusive(ctx, w, maintenance.ModeFull, true, func(ctx context.Context, rp maintenance.RunParameters) error {
				// Contents no snapshot reaches are marked deleted, and the
				// marks dropped from the index at once: a watermark a second
				// ahead covers marks made within this second.
				if err := snapshotgc.Run(ctx, w, true, maintenance.SafetyNone, rp.MaintenanceStartTime); err != nil {
					return err
				}
				if err := w.Flush(ctx); err != nil {
					return err
				}
				_, err := w.ContentManager().CompactIndexes(ctx, indexblob.CompactOptions{
					AllIndexes: true, DropDeletedBefore: w.Time().Truncate(time.Second).Add(time.Second), DisableEventualConsistencySafety: true,
				})
				if err != nil {
					return err
				}
				if err := w.Refresh(ctx); err != nil {
					return err
				}
				// Every pack that holds unreferenced bytes beside live ones
				// has its live contents moved out, so it can go.
				live := map[blob.ID][]content.ID{}
				err = w.ContentReader().IterateContents(ctx, content.IterateOptions{}, func(ci content.Info) error {
					live[ci.PackBlobID] = append(live[ci.PackBlobID], ci.ContentID)
					return nil
				})
				if err != nil {
					return err
				}
				var move []content.ID
				for _, prefix := range []blob.ID{content.PackBlobIDPrefixRegular, content.PackBlobIDPrefixSpecial} {
					packs, err := blob.ListAllBlobs(ctx, w.BlobReader(), prefix)
					if err != nil {
						return err
					}
					for _, p := range packs {
						in, err := w.ContentManager().RecoverIndexFromPackBlob(ctx, p.BlobID, p.Length, false)
						if err != nil {
							// Damaged: what lives in it stays where it is,
							// for a verification to find and a backup to
							// write anew; with nothing live left it goes
							// with the unreferenced packs below.
							continue
						}
						if n := len(live[p.BlobID]); n > 0 && len(in) > n {
							move = append(move, live[p.BlobID]...)
						}
					}
				}
				if len(move) > 0 {
					if _, err := maintenance.RewriteContents(ctx, w, &maintenance.RewriteContentsOptions{ContentIDs: move}, maintenance.SafetyNone); err != nil {
						return err
					}
				}
				if err := w.Flush(ctx); err != nil {
					return err
				}
				_, err = maintenance.DeleteUnreferencedPacks(ctx, w, maintenance.DeleteUnreferencedPacksOptions{NotAfterTime: w.Time()}, maintenance.SafetyNone)
				return err
			})
		})
}

// List returns the IDs of an item's recovery points.
func (s *Store) List(ctx context.Context, vaultID, itemID string) ([]string, error) {
	if err := checkNames(vaultID, itemID); err != nil {
		return nil, err
	}
	defer s.lockItem(vaultID, itemID)()
	r, err := s.open(ctx, vaultID, itemID, time.Time{}, false)
	if errors.Is(err, errNoRepository) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	points, err := snapshot.ListSnapshots(ctx, r, sourceOf(vaultID, itemID))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range points {
		ids = append(ids, m.Tags[labelPoint])
	}
	slices.Sort(ids)
	return ids, nil
}
