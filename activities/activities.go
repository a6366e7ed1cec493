// Package activities holds the side effects of items and vaults: the
// recovery-point store, the notifier, and the calls to other workflows.
// Each activity implements one the workflows name
// (workflows/protocol/activities.go): the item's in this file, the
// vault's in vault.go.
package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/items"
	"recoveryvault/store"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// Activities are the side effects of items and vaults, with what they
// need: the store, the Temporal client for talking to other workflows, the
// notifier, and the worker's settings.
type Activities struct {
	Store    *store.Store
	Client   client.Client
	Notifier Notifier
	Settings protocol.Settings

	// runs are the calling runs confirmed to be ours (admit).
	runs runCache
}

// Backup takes a new recovery point of the item's source tree. On a store
// with object lock, what it writes is kept for the item's window.
func (a *Activities) Backup(ctx context.Context, in item.BackupInput) (item.BackupResult, error) {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return item.BackupResult{}, err
	}
	return a.backup(ctx, in)
}

func (a *Activities) backup(ctx context.Context, in item.BackupInput) (item.BackupResult, error) {
	if in.First {
		a.alertEarlierRun(ctx, in)
	}
	vault := a.vaultNow(ctx, in.VaultID)
	lock := a.lockFor(in.Window, vault)
	p, err := a.Store.Backup(ctx, in.VaultID, in.ItemID, in.Point.ID, in.SourcePath, lock.Until, heartbeat(ctx), store.CompareWith(in.CompareWith))
	if err != nil {
		return item.BackupResult{}, classifyIn(ctx, err)
	}
	if err := a.alertTamper(ctx, in.VaultID, in.ItemID, store.Tamper{Markers: p.Unhidden}); err != nil && activity.IsActivity(ctx) {
		// The point is stored; a retry would find no marker to tell of.
		activity.GetLogger(ctx).Error("Tamper alert not delivered", "error", err)
	}
	rp := in.Point
	rp.SizeBytes, rp.NewBytes, rp.SHA256, rp.Change, rp.Fresh = p.SizeBytes, p.NewBytes, p.SHA256, p.Change, p.Fresh
	if len(p.Skipped) > 0 && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn("Special files not backed up", "vault", in.VaultID, "item", in.ItemID, "files", p.Skipped)
	}
	res := item.BackupResult{Point: rp, Files: p.Files, Skipped: len(p.Skipped), Lock: lock, Since: p.Since}
	if vault != nil {
		// What the item knows of its vault is as fresh as its last backup.
		protection := vault.Protection()
		res.Settings, res.Protection = &vault.SoftDeleteSettings, &protection
	}
	return res, nil
}

// alertEarlierRun tells of an item started anew over the points an
// earlier run of it left in the store: that run was terminated or reset.
// The points stay where they are.
func (a *Activities) alertEarlierRun(ctx context.Context, in item.BackupInput) {
	ids, err := a.Store.List(ctx, in.VaultID, in.ItemID)
	if err != nil || len(ids) == 0 || slices.Equal(ids, []string{in.Point.ID}) {
		return
	}
	alert := protocol.Alert{Kind: protocol.AlertItemRestarted, VaultID: in.VaultID, ItemID: in.ItemID, Time: time.Now().UTC(),
		Detail: fmt.Sprintf("item %s was started anew over %s an earlier run of it left in the store: that run was terminated or reset; they are kept",
			in.ItemID, protocol.Plural(len(ids), "recovery point"))}
	if err := a.notify(ctx, alert); err != nil && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Error("Alert of an item started anew not delivered", "error", err)
	}
}

// lock is how long a store with object lock keeps what is written now:
// the window a delete made now would get, under the vault's settings as
// it publishes them now (the item may not have seen a longer retention
// yet), or as far as the item knows them when they cannot be read. Zero
// on a store that does not lock.
func (a *Activities) lock(ctx context.Context, vaultID string, window protocol.WindowInputs) item.LockResult {
	if !a.Store.Locks() {
		return item.LockResult{}
	}
	return a.lockFor(window, a.vaultNow(ctx, vaultID))
}

func (a *Activities) lockFor(window protocol.WindowInputs, vs *protocol.DeleteSettings) item.LockResult {
	if !a.Store.Locks() {
		return item.LockResult{}
	}
	vault := protocol.DefaultSoftDeleteSettings()
	if vs != nil {
		vault = vs.SoftDeleteSettings
	}
	w := a.Settings.LockWindow(window, vault)
	return item.LockResult{Until: time.Now().Add(w), Window: w}
}

// vaultNow is what a vault publishes now, nil when it cannot be read.
func (a *Activities) vaultNow(ctx context.Context, vaultID string) *protocol.DeleteSettings {
	if a.Client == nil {
		return nil
	}
	vs, err := items.VaultSettings(ctx, a.Client, vaultID)
	if err != nil {
		return nil
	}
	return &vs
}

// Restore writes a recovery point to TargetPath, every file checked
// against the content hash the workflow recorded.
func (a *Activities) Restore(ctx context.Context, in item.RestoreInput) (item.RestoreResult, error) {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return item.RestoreResult{}, err
	}
	return a.restore(ctx, in)
}

func (a *Activities) restore(ctx context.Context, in item.RestoreInput) (item.RestoreResult, error) {
	r, err := a.Store.Restore(ctx, in.VaultID, in.ItemID, in.Point.ID, in.Point.SHA256, in.TargetPath, heartbeat(ctx))
	if err != nil {
		return item.RestoreResult{}, classifyIn(ctx, err)
	}
	if err := a.alertTamper(ctx, in.VaultID, in.ItemID, store.Tamper{Markers: r.Unhidden}); err != nil && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Error("Tamper alert not delivered", "error", err)
	}
	return item.RestoreResult{Files: r.Files, Bytes: r.Bytes}, nil
}

// Verify reads a recovery point back from the store, every file checked
// against its backup's hashes, and writes nothing to the host: a restore
// drill. It runs on its own task queue, so that drills wait for each other
// and never for backups.
func (a *Activities) Verify(ctx context.Context, in item.VerifyInput) (item.RestoreResult, error) {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return item.RestoreResult{}, err
	}
	v, err := a.Store.Verify(ctx, in.VaultID, in.ItemID, in.Point.ID, in.Point.SHA256, heartbeat(ctx))
	if err != nil {
		return item.RestoreResult{}, classifyIn(ctx, err)
	}
	return item.RestoreResult{Files: v.Files, Bytes: v.Bytes}, nil
}

// Collect removes expired recovery points and the data only they held. It
// is idempotent, so the workflow retries it.
func (a *Activities) Collect(ctx context.Context, in item.CollectInput) error {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return err
	}
	_, err := a.Store.Delete(ctx, in.VaultID, in.ItemID, in.RecoveryPointIDs, a.lock(ctx, in.VaultID, in.Window).Until, heartbeat(ctx))
	return classify(err)
}

// Lock keeps every object of an item, on a store with object lock, until a
// soft-deleted item's deadline, or for the item's window from now.
func (a *Activities) Lock(ctx context.Context, in item.LockInput) (item.LockResult, error) {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return item.LockResult{}, err
	}
	lock := a.lock(ctx, in.VaultID, in.Window)
	if lock.Until.IsZero() {
		return lock, nil
	}
	if !in.Until.IsZero() {
		lock.Until = in.Until
	}
	tamper, err := a.Store.Lock(ctx, in.VaultID, in.ItemID, lock.Until, heartbeat(ctx))
	// Found while locking, whether or not the lock then held.
	if nerr := a.alertTamper(ctx, in.VaultID, in.ItemID, tamper); nerr != nil && err == nil {
		err = nerr
	}
	return lock, classify(err)
}

// alertTamper tells what someone did to an item's objects in the store.
func (a *Activities) alertTamper(ctx context.Context, vaultID, itemID string, t store.Tamper) error {
	what := t.String()
	if what == "" {
		return nil
	}
	return a.notify(ctx, protocol.Alert{Kind: protocol.AlertTamper, VaultID: vaultID, ItemID: itemID, Time: time.Now().UTC(),
		Detail: protocol.Clip("someone changed the item's objects in the store: "+what, protocol.MaxDetailBytes)})
}

// Purge destroys everything of an item, then tells its vault and sends the
// alert. It is idempotent: the workflow retries it until it succeeds. Only
// the item itself, soft-deleted past its deadline, may have it run.
func (a *Activities) Purge(ctx context.Context, in item.PurgeInput) error {
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.ItemID)); err != nil {
		return err
	}
	if err := a.dueForPurge(ctx, in.VaultID); err != nil {
		return err
	}
	return a.purge(ctx, in)
}

func (a *Activities) purge(ctx context.Context, in item.PurgeInput) error {
	if err := a.Store.Purge(ctx, in.VaultID, in.ItemID, heartbeat(ctx)); err != nil {
		return classify(err)
	}
	_, err := a.report(ctx, in.Report)
	return err
}

func heartbeat(ctx context.Context) store.Progress {
	if !activity.IsActivity(ctx) {
		return nil
	}
	var last atomic.Int64
	// Also while the store waits, with nothing to report: for its turn to
	// open a repository (a key derivation each, two at a time) behind a
	// thousand first backups, or for a slow bucket. The SDK sends at most
	// one heartbeat per interval; this one ends with the activity's context.
	go func() {
		t := time.NewTicker(keepAlive)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, last.Load())
			}
		}
	}()
	return func(bytes int64) {
		last.Store(bytes)
		activity.RecordHeartbeat(ctx, bytes)
	}
}

// keepAlive is how often a store activity heartbeats while it waits.
const keepAlive = 15 * time.Second

// classify turns store errors that no retry can fix into non-retryable
// application errors, keeping the store's sentence as the message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	return classifyIn(context.Background(), err)
}

// classifyIn is classify, logging through the activity the detail of a
// failure that names files: its sentence for the history names none.
func classifyIn(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var n *store.NamedError
	if errors.As(err, &n) && activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Error("Store failure", "detail", n.Detail())
	}
	for _, c := range []struct {
		err error
		typ string
	}{
		{store.ErrSourceMissing, protocol.ErrTypeSourceMissing},
		{store.ErrUnknownRecoveryPoint, protocol.ErrTypeUnknownRecoveryPoint},
		{store.ErrTargetNotEmpty, protocol.ErrTypeTargetNotEmpty},
		{store.ErrCorrupted, protocol.ErrTypeCorrupted},
		{store.ErrVerifyFailed, protocol.ErrTypeVerifyFailed},
		{store.ErrInvalidInput, protocol.ErrTypeInvalidInput},
	} {
		if errors.Is(err, c.err) {
			// The type says the kind; the message is the sentence alone.
			msg := strings.TrimPrefix(err.Error(), c.err.Error()+": ")
			return temporal.NewNonRetryableApplicationError(msg, c.typ, nil)
		}
	}
	return err
}

// Report registers an item with its vault, starting the vault with
// default settings if it does not run (a vault that runs is only read, from
// the server's record, without a task of it), reads the vault's settings
// from its memo for the item's floor, and delivers the item's alerts.
func (a *Activities) Report(ctx context.Context, in item.ReportInput) (item.ReportResult, error) {
	if err := a.admit(ctx, in.VaultID, anyItemOf(in.VaultID)); err != nil {
		return item.ReportResult{}, err
	}
	return a.report(ctx, in)
}

func (a *Activities) report(ctx context.Context, in item.ReportInput) (item.ReportResult, error) {
	var res item.ReportResult
	if in.Register {
		vs, err := items.VaultSettings(ctx, a.Client, in.VaultID)
		var running *items.NotRunningError
		if errors.As(err, &running) {
			if err := items.StartVault(ctx, a.Client, in.VaultID); err != nil {
				return res, err
			}
			// A vault just started publishes its settings at its first
			// task: until then the item keeps its floor.
			vs, err = items.VaultSettings(ctx, a.Client, in.VaultID)
		}
		if err == nil {
			p := vs.Protection()
			res.Settings, res.Protection = &vs.SoftDeleteSettings, &p
			if in.Floor.Vault != "" && in.Floor.Vault != p.Incarnation {
				a.alertRestarted(ctx, in.VaultID, in.Floor.Weakened(in.VaultID, p))
			}
		}
	}
	for _, alert := range in.Alerts {
		alert.VaultID = in.VaultID
		if err := a.notify(ctx, alert); err != nil {
			return res, err
		}
	}
	return res, nil
}

// AskVault sends an item's delete to its vault (the itemDelete update) and
// delivers the alert the vault's answer calls for. A retry sends the same
// update ID, so the vault decides once. A refusal by the vault is final.
// A delete the vault held when last asked, and that the hold it publishes
// still holds, is answered so from the vault's record: a burst of held
// deletes asking again does not queue at the vault.
func (a *Activities) AskVault(ctx context.Context, in item.AskVaultInput) (protocol.VaultAnswer, error) {
	var answer protocol.VaultAnswer
	if err := a.admit(ctx, in.VaultID, itemCaller(in.VaultID, in.Request.ItemID)); err != nil {
		return answer, err
	}
	id := protocol.VaultWorkflowID(in.VaultID)
	vs, err := items.VaultSettings(ctx, a.Client, in.VaultID)
	if why := in.Floor.Weakened(in.VaultID, vs.Protection()); err == nil && why != "" {
		// Not asked: a vault started anew that requires less than the
		// item saw would let the delete through on less.
		if !in.HeldBefore {
			a.alertRestarted(ctx, in.VaultID, why)
		}
		answer.Held, answer.Settings = why, vs.SoftDeleteSettings
		return answer, nil
	}
	var unpublished *items.NotPublishedError
	switch {
	case errors.As(err, &unpublished) && (in.Floor.Mua || in.Floor.Signers != ""):
		// What it requires now cannot be read: one started anew may
		// require less than the item saw, so it is not asked yet.
		answer.Held = fmt.Sprintf("vault %s has not published in this run what it requires of a delete, and it required approval or signatures before: the delete waits until it does", in.VaultID)
		return answer, nil
	case errors.As(err, &unpublished):
		// It runs, and answers at its first task.
	case err != nil:
		// Not started yet (a new item's first report starts it, and
		// a delete right after the protect may come first), or not a vault
		// of ours: the item asks again later.
		return answer, err
	case in.HeldBefore:
		if why := vs.StillHeld(in.VaultID, in.Request, time.Now()); why != "" {
			answer.Held, answer.Settings = why, vs.SoftDeleteSettings
			return answer, nil
		}
	}
	info := activity.GetInfo(ctx)
	err = items.Execute(ctx, a.Client, client.UpdateWorkflowOptions{
		WorkflowID: id,
		UpdateName: protocol.UpdateItemDelete,
		UpdateID:   info.WorkflowExecution.RunID + "/" + info.ActivityID,
		Args:       []any{in.Request},
	}, &answer)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		// The refusal's code and field go on to the item, and to whoever
		// asked it.
		return answer, temporal.NewNonRetryableApplicationError(app.Message(), app.Type(), nil, protocol.RefusalOf(err))
	}
	if err != nil {
		return answer, fmt.Errorf("update %s of %s: %w", protocol.UpdateItemDelete, id, err)
	}
	if answer.Alert != nil {
		if err := a.notify(ctx, *answer.Alert); err != nil {
			return answer, err
		}
	}
	return answer, nil
}

// alertRestarted tells that a vault runs a new incarnation since an item
// last saw it: it was terminated or reset and started anew.
func (a *Activities) alertRestarted(ctx context.Context, vaultID, weakened string) {
	info := activity.GetInfo(ctx)
	detail := fmt.Sprintf("vault %s was terminated or reset and started anew since item workflow %s last saw it", vaultID, info.WorkflowExecution.ID)
	if weakened != "" {
		detail = weakened
	}
	alert := protocol.Alert{Kind: protocol.AlertVaultRestarted, VaultID: vaultID, ItemID: strings.TrimPrefix(info.WorkflowExecution.ID, protocol.WorkflowID(vaultID, "")),
		Time: time.Now().UTC(), Detail: protocol.Clip(detail, protocol.MaxDetailBytes)}
	if err := a.notify(ctx, alert); err != nil {
		activity.GetLogger(ctx).Error("Alert of a vault started anew not delivered", "error", err, "detail", detail)
	}
}
