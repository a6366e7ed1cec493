package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
)

const (
	// maxAuditEntries bounds the audit kept in state; the full record is the
	// event history.
	maxAuditEntries = 100
	// maxHistoryLength bounds one run's history, in events, whether or not
	// the server suggests continue-as-new.
	maxHistoryLength = 4000

	anonymous = "anonymous"
	system    = "system"
	scheduler = "scheduler"
)

// acts names the activities; its methods are only used as references.
var acts *activities.Activities

// Settings belong to the worker, not to an item: they come from its flags.
type Settings struct {
	// SoftDeleteRetention, when not zero, is the worker's soft-delete
	// window: in dev mode it replaces every delete's window; otherwise it is
	// a floor, so a worker can lengthen windows but never shorten one.
	SoftDeleteRetention time.Duration
	Dev                 bool
}

// window is the worker's window as a delete records it.
func (s Settings) window() windowSetting {
	return windowSetting{Window: s.SoftDeleteRetention, Replace: s.Dev}
}

// overrideNote says, in a status, what the worker does to windows.
func (s Settings) overrideNote() string {
	switch {
	case s.SoftDeleteRetention <= 0:
		return ""
	case s.Dev:
		return s.SoftDeleteRetention.String() + " (dev mode: replaces the soft-delete window of every delete)"
	}
	return s.SoftDeleteRetention.String() + " (worker minimum: every delete gets at least this window)"
}

// NewBackupItem returns the BackupItem workflow bound to a worker's
// settings; register it under WorkflowType.
func NewBackupItem(s Settings) func(workflow.Context, ItemInput) (Status, error) {
	return func(ctx workflow.Context, in ItemInput) (Status, error) { return backupItem(ctx, in, s) }
}

// BackupItem is one backup item for its whole life: protected with scheduled
// backups, stopped, soft-deleted with a durable purge timer, and finally
// purged. It continues as new to keep its history bounded.
func BackupItem(ctx workflow.Context, in ItemInput) (Status, error) {
	return backupItem(ctx, in, Settings{})
}

func backupItem(ctx workflow.Context, in ItemInput, settings Settings) (Status, error) {
	if err := in.Validate(); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalidInput, nil)
	}
	if err := checkIdentity(ctx, WorkflowID(in.VaultID, in.ItemID)); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalidInput, nil)
	}
	w := newItem(ctx, in)
	w.settings = settings
	// Handlers first: an update delivered in the first task of a run must
	// find them. They wait until carried state has been verified, or for a
	// new item until its first backup is in: an item refused there must
	// have published, alerted or answered nothing.
	w.verified = false
	if err := w.registerHandlers(ctx); err != nil {
		return Status{}, err
	}
	// Carried state is trusted only from this item's own continue-as-new:
	// a start input claiming to be soft-deleted would otherwise purge at once.
	if in.State != nil {
		var err error
		if workflow.GetInfo(ctx).ContinuedExecutionRunID == "" {
			err = errForgedState
		}
		if err == nil {
			err = in.State.validate()
		}
		if err == nil {
			err = checkCarriedState(ctx, WorkflowType)
		}
		if err != nil {
			return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalidInput, nil)
		}
		w.verified = true
	}
	if in.State == nil {
		// The first backup proves the source exists: an item whose source is
		// missing is refused outright rather than protected with nothing.
		// It comes before the item shows itself to visibility or its vault,
		// so a refused item leaves no item behind anywhere.
		if err := w.backup(ctx, "protect", system); isBadSource(err) {
			return Status{}, temporal.NewNonRetryableApplicationError(message(err), activities.ErrTypeSourceMissing, nil)
		}
		w.st.NextBackupAt = workflow.Now(ctx).Add(w.frequency)
		w.verified = true
	}
	w.publish(ctx)
	w.sender = startAlertSender(ctx, &w.st.Outbox)
	w.startReporter(ctx)
	return w.run(ctx)
}

type item struct {
	in        ItemInput
	st        ItemState
	frequency time.Duration
	settings  Settings

	// version changes with every accepted operation so the loop wakes and
	// re-arms its timers, whoever made the change.
	version int
	// storeLock serialises the activities that touch the item's store.
	storeLock workflow.Mutex

	purgeTimer   workflow.Future
	cancelPurge  workflow.CancelFunc
	purgeAt      time.Time
	backupTimer  workflow.Future
	cancelBackup workflow.CancelFunc
	backupAt     time.Time

	signals   []signalChannel
	approvals workflow.ReceiveChannel
	published string
	// collecting is true while a garbage-collection activity runs.
	collecting bool
	// verified is false while carried state is being checked, or a new
	// item's first backup runs; handlers wait.
	verified bool
	// checking holds the approvals being looked up at the vault, so the
	// same one sent twice is not carried out twice.
	checking map[string]bool

	sender         *alertSender
	reportedKey    string
	reporting      bool
	reminderTimer  workflow.Future
	cancelReminder workflow.CancelFunc
	reminderAt     time.Time
}

type signalChannel struct {
	op Operation
	ch workflow.ReceiveChannel
}

func newItem(ctx workflow.Context, in ItemInput) *item {
	w := &item{in: in, storeLock: workflow.NewMutex(ctx), checking: map[string]bool{}}
	w.frequency, _ = ParseFrequency(in.Policy.Frequency)
	if in.State != nil {
		w.st = *in.State
	} else {
		w.st = ItemState{ProtectionState: Protected}
	}
	w.in.State = nil
	// The order here is the order in which signals of different names that
	// arrive in one workflow task are applied (the SDK keeps order only per
	// name). It is chosen so the data-keeping outcome wins: resume first, as
	// the only operation that leads to garbage collection, so a stop sent
	// with it stands; delete before undelete, so the data is kept.
	for _, op := range []Operation{OpResume, OpStop, OpDelete, OpUndelete} {
		w.signals = append(w.signals, signalChannel{op, workflow.GetSignalChannel(ctx, string(op))})
	}
	w.approvals = workflow.GetSignalChannel(ctx, SignalDeleteApproved)
	return w
}

// run is the item's life after the start: serve signals, then act on the
// clock, then wait for the next thing to happen.
func (w *item) run(ctx workflow.Context) (Status, error) {
	for {
		if ctx.Err() != nil {
			// A cancelled item stops with its data intact; only the purge
			// timer may destroy data.
			return w.status(workflow.Now(ctx)), ctx.Err()
		}
		// Signals first: an undelete that arrived with the timer's firing in
		// one task must be applied before the timer is looked at. Update
		// handlers of that task have already run: the SDK runs them before
		// this coroutine, and they apply their transition before blocking.
		w.serveSignals(ctx)
		w.armTimers(ctx)

		switch {
		case w.st.ProtectionState == Purging:
			// Reached from the deadline, or at once from a delete in a vault
			// with soft delete disabled; also after a restart mid-purge.
			if err := w.purge(ctx); err != nil {
				return Status{}, err
			}
			return w.finish(ctx)
		case fired(ctx, w.purgeTimer):
			w.purgeTimer, w.cancelPurge = nil, nil
			_, _ = w.apply(ctx, OpWindowEnds, system, "")
		case fired(ctx, w.reminderTimer):
			w.reminderTimer, w.cancelReminder = nil, nil
			w.remind(ctx)
		case fired(ctx, w.backupTimer):
			w.backupTimer, w.cancelBackup = nil, nil
			w.scheduledBackup(ctx)
		case w.st.GarbagePending && w.st.ProtectionState == Protected:
			w.collectGarbage(ctx)
		case w.readyToContinueAsNew(ctx):
			return w.continueAsNew(ctx)
		default:
			seen := w.version
			_ = workflow.Await(ctx, func() bool {
				return w.version != seen || ready(w.purgeTimer) || ready(w.backupTimer) || ready(w.reminderTimer) ||
					w.signalsPending() || w.readyToContinueAsNew(ctx)
			})
		}
	}
}

// armTimers makes the timers match the state: a purge timer for exactly the
// current deadline while soft-deleted, a backup timer for the next backup
// while protected. An undelete and a new delete can both be applied before
// the loop runs again, so a timer armed for another time is replaced, never
// kept. A cancelled timer shows as TimerCanceled in the history.
func (w *item) armTimers(ctx workflow.Context) {
	now := workflow.Now(ctx)
	if w.purgeTimer != nil && (w.st.ProtectionState != SoftDeleted || !w.purgeAt.Equal(w.st.Deadline)) {
		w.cancelPurge()
		w.purgeTimer, w.cancelPurge = nil, nil
	}
	if w.st.ProtectionState == SoftDeleted && w.purgeTimer == nil {
		w.purgeAt = w.st.Deadline
		w.purgeTimer, w.cancelPurge = startTimer(ctx, w.purgeAt.Sub(now), "purge")
	}
	if w.reminderTimer != nil && (w.st.ProtectionState != SoftDeleted || !w.reminderAt.Equal(w.st.ReminderAt)) {
		w.cancelReminder()
		w.reminderTimer, w.cancelReminder = nil, nil
	}
	if w.st.ProtectionState == SoftDeleted && !w.st.ReminderAt.IsZero() && w.reminderTimer == nil {
		w.reminderAt = w.st.ReminderAt
		w.reminderTimer, w.cancelReminder = startTimer(ctx, w.reminderAt.Sub(now), "purge reminder")
	}
	if w.st.ProtectionState == Protected && w.st.NextBackupAt.IsZero() {
		w.st.NextBackupAt = now.Add(w.frequency)
	}
	if w.backupTimer != nil && (w.st.ProtectionState != Protected || !w.backupAt.Equal(w.st.NextBackupAt)) {
		w.cancelBackup()
		w.backupTimer, w.cancelBackup = nil, nil
	}
	if w.st.ProtectionState == Protected && w.backupTimer == nil {
		w.backupAt = w.st.NextBackupAt
		w.backupTimer, w.cancelBackup = startTimer(ctx, w.backupAt.Sub(now), "backup")
	}
}

// startTimer returns a cancellable timer, or an already-ready future when
// the time is already due: NewTimer with d <= 0 creates no timer at all.
func startTimer(ctx workflow.Context, d time.Duration, summary string) (workflow.Future, workflow.CancelFunc) {
	tctx, cancel := workflow.WithCancel(ctx)
	if d <= 0 {
		f, s := workflow.NewFuture(tctx)
		s.Set(nil, nil)
		return f, cancel
	}
	return workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: summary}), cancel
}

func ready(f workflow.Future) bool { return f != nil && f.IsReady() }

// fired is true for a timer that ran to its end; one made ready by a
// cancellation is not a deadline that passed.
func fired(ctx workflow.Context, f workflow.Future) bool {
	return ready(f) && f.Get(ctx, nil) == nil
}

// apply runs an operation through the state machine and records it. A
// refusal changes nothing but the audit trail.
func (w *item) apply(ctx workflow.Context, op Operation, by, reason string) (Decision, error) {
	return w.applyApproved(ctx, op, by, reason, nil)
}

// applyApproved is apply for a delete whose approval has been checked at
// the vault; approval is nil for everything else.
func (w *item) applyApproved(ctx workflow.Context, op Operation, by, reason string, approval *MuaRequest) (Decision, error) {
	if op == OpStop || op == OpDelete {
		// Points kept by a stop or a delete must not vanish under a
		// collection that is already running: let it finish first.
		_ = workflow.Await(ctx, func() bool { return !w.collecting })
	}
	// Settings are read before the facts are taken: reading them may take
	// time, and the decision is on the state as it is afterwards.
	var window, reminderLead time.Duration
	var disabled, deleting, mua bool
	if op == OpDelete && (w.st.ProtectionState == Protected || w.st.ProtectionState == ProtectionStopped) {
		var err error
		window, disabled, reminderLead, mua, err = w.deleteSettings(ctx)
		if err != nil {
			w.audit(ctx, string(op), by, OutcomeRejected, err.Error())
			return Decision{}, err
		}
		deleting = true
	}
	if deleting && mua && approval == nil {
		return w.requestApproval(ctx, by, reason)
	}
	now := workflow.Now(ctx)
	f := w.facts(now)
	if deleting {
		f.SoftDeleteRetention, f.SoftDeleteDisabled = window, disabled
	}
	d, err := Decide(w.st.ProtectionState, op, f)
	if err != nil {
		w.audit(ctx, string(op), by, OutcomeRejected, err.Error())
		return d, err
	}
	prev := w.st.ProtectionState
	w.st.ProtectionState = d.Next
	switch {
	case !d.Deadline.IsZero():
		w.st.DeletedAt, w.st.Deadline = now, d.Deadline
	case d.Next == Protected || d.Next == ProtectionStopped:
		w.st.DeletedAt, w.st.Deadline = time.Time{}, time.Time{}
	}
	if d.Next == Protected && prev != Protected {
		w.st.NextBackupAt = now.Add(w.frequency)
	}
	if d.CollectGarbage {
		w.st.GarbagePending = true
	}
	switch {
	case d.Next == SoftDeleted && prev != SoftDeleted:
		w.st.ReminderAt = time.Time{}
		if at := d.Deadline.Add(-reminderLead); reminderLead > 0 && at.After(now) {
			w.st.ReminderAt = at
		}
		w.alert(ctx, activities.AlertSoftDeleted, by, d.Detail)
	case prev == SoftDeleted && d.Next == ProtectionStopped:
		w.st.ReminderAt = time.Time{}
		w.alert(ctx, activities.AlertUndeleted, by, d.Detail)
	case d.Next == Purged && prev != Purged:
		w.alert(ctx, activities.AlertPurged, by, d.Detail)
	}
	if !d.NoOp || op.byUser() {
		detail := d.Detail
		if d.NoOp {
			detail = noChange + detail
		}
		if reason != "" {
			detail = strings.TrimPrefix(detail+"; reason: "+reason, "; ")
		}
		w.audit(ctx, string(op), by, OutcomeAccepted, detail)
	}
	w.version++
	w.publish(ctx)
	return d, nil
}

// deleteSettings are what a delete made now gets: the vault's settings, read
// at this moment and recorded in the history, then the worker's override.
// Of the vault's retention and the item's own, the longer one applies. A
// vault that cannot be read refuses the delete: the item never guesses.
func (w *item) deleteSettings(ctx workflow.Context) (window time.Duration, disabled bool, reminder time.Duration, mua bool, err error) {
	read, ok := w.readVaultSettings(ctx)
	if !ok {
		// Whether the delete needs approval is unknown: refuse it rather
		// than guess that it does not.
		return 0, false, 0, false, &Refusal{Message: fmt.Sprintf(
			"vault %s could not be read to learn how deletes of item %s are protected: nothing changed, try again",
			w.in.VaultID, w.in.ItemID)}
	}
	vs, mua := read.SoftDeleteSettings, read.MultiUserAuthorization
	window, disabled = w.windowInputs(w.windowOverride(ctx)).Window(vs)
	return window, disabled, vs.reminderLead(), mua, nil
}

// windowInputs are the item's part in the window of a delete made now.
func (w *item) windowInputs(o windowSetting) WindowInputs {
	return WindowInputs{ItemDays: w.in.SoftDeleteRetentionDays, Floor: w.st.VaultFloor, Override: o}
}

// readVaultSettings asks the vault for its soft-delete settings, believing
// only a running Vault workflow, and raises the item's floor with them.
func (w *item) readVaultSettings(ctx workflow.Context) (DeleteSettings, bool) {
	var vs DeleteSettings
	if err := queryWorkflow(ctx, VaultWorkflowID(w.in.VaultID), VaultWorkflowType, QuerySoftDeleteSettings, &vs); err != nil || vs.State == "" {
		return vs, false
	}
	w.st.VaultFloor.raise(vs.SoftDeleteSettings)
	return vs, true
}

// windowOverride is the worker's soft-delete window, if it sets one. A worker
// override is read at the moment of the delete and recorded in the history,
// so a replay, another worker or a continue-as-new gives the same deadline.
func (w *item) windowOverride(ctx workflow.Context) windowSetting {
	var o windowSetting
	err := workflow.SideEffect(ctx, func(workflow.Context) any {
		return w.settings.window()
	}).Get(&o)
	if err != nil {
		return windowSetting{}
	}
	return o
}

// windowSetting is the worker's window as recorded at a delete.
type windowSetting struct {
	Window  time.Duration `json:"window"`
	Replace bool          `json:"replace"`
}

// alert queues an alert for the sender.
func (w *item) alert(ctx workflow.Context, kind, by, detail string) {
	a := activities.Alert{Kind: kind, VaultID: w.in.VaultID, ItemID: w.in.ItemID, RequestedBy: by, Time: workflow.Now(ctx).UTC(), Detail: detail}
	if w.st.ProtectionState == SoftDeleted || kind == activities.AlertSoftDeleted {
		a.PurgeTime = w.st.Deadline.UTC()
	}
	w.st.Outbox = append(w.st.Outbox, a)
}

// remind sends the purge reminder, once.
func (w *item) remind(ctx workflow.Context) {
	w.st.ReminderAt = time.Time{}
	if w.st.ProtectionState != SoftDeleted {
		return
	}
	left := w.st.Deadline.Sub(workflow.Now(ctx))
	w.alert(ctx, activities.AlertPurgeReminder, system, "purged in "+FormatRemaining(left)+" unless undeleted")
	w.audit(ctx, "purgeReminder", system, OutcomeAccepted, "reminder sent: purge scheduled for "+w.st.Deadline.UTC().Format(time.RFC3339))
	w.version++
}

// startReporter registers the item with its vault and reports each change
// of state, from a coroutine of its own so the loop never waits on the
// vault. Reports carry a sequence, so the vault ignores a late older one.
func (w *item) startReporter(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second,
				MaximumInterval: time.Minute,
				MaximumAttempts: 10,
			},
		})
		for {
			if err := workflow.Await(ctx, func() bool { return w.reportedKey != w.reportKey() }); err != nil {
				return
			}
			state, deadline, key := w.visible()
			w.st.ReportSequence++
			r := ItemReport{ItemID: w.in.ItemID, Incarnation: workflow.GetInfo(ctx).FirstRunID, VaultItem: VaultItem{
				ProtectionState: state, DeferredDeleteTime: deadline, Sequence: w.st.ReportSequence,
			}}
			signal, _ := json.Marshal(r)
			in := activities.SignalWithStartInput{
				WorkflowID: VaultWorkflowID(w.in.VaultID), WorkflowType: VaultWorkflowType, TaskQueue: TaskQueue,
				SignalName: SignalItemChanged, Signal: signal, StartInput: vaultStartInput(w.in.VaultID),
			}
			w.reporting = true
			if err := workflow.ExecuteActivity(actx, acts.SignalWithStart, in).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("Vault not told of the item's state", "vault", w.in.VaultID, "error", err)
			}
			// Learn the vault's settings while here: the floor they raise
			// protects the item even if the vault is later reset.
			w.readVaultSettings(ctx)
			w.reporting = false
			w.reportedKey = key
		}
	})
}

// visible is what the outside world is told of the item: its state as
// users see it, its purge deadline while soft-deleted, and a key that
// changes exactly when either does. Search attributes and vault reports
// both follow it.
func (w *item) visible() (State, time.Time, string) {
	state := VisibleState(w.st.ProtectionState)
	var deadline time.Time
	if state == SoftDeleted {
		deadline = w.st.Deadline.UTC()
	}
	return state, deadline, string(state) + "|" + deadline.String()
}

func (w *item) reportKey() string {
	_, _, key := w.visible()
	return key
}

// caughtUp is true when the vault knows the current state and every alert
// is out: a finished item must have told everyone.
func (w *item) caughtUp() bool {
	return !w.reporting && w.reportedKey == w.reportKey() && w.sender.drained()
}

func (op Operation) byUser() bool {
	return op != OpScheduledBackup && op != OpWindowEnds && op != OpPurgeDone
}

func (w *item) facts(now time.Time) Facts {
	return Facts{
		ItemID:              w.in.ItemID,
		Now:                 now,
		SoftDeleteRetention: time.Duration(w.in.SoftDeleteRetentionDays) * 24 * time.Hour,
		Deadline:            w.st.Deadline,
	}
}

// serveSignals drains every signal channel. Payloads are received raw and
// decoded here: a payload the SDK cannot decode into a struct would be
// dropped silently and block a plain Receive until the next signal.
//
// Serving a signal may block (a delete reads its vault's settings), and
// signals that arrive meanwhile are served too before it returns: an
// undelete must never wait behind a delete while the purge timer fires.
func (w *item) serveSignals(ctx workflow.Context) {
	for w.signalsPending() {
		for _, s := range w.signals {
			var raw converter.RawValue
			for s.ch.ReceiveAsync(&raw) {
				req, err := DecodeRequest(string(s.op), raw)
				if err != nil {
					w.audit(ctx, string(s.op), anonymous, OutcomeRejected, "malformed signal, nothing changed: "+err.Error())
				} else {
					_, _ = w.apply(ctx, s.op, requester(req.RequestedBy), req.Reason)
				}
				raw = converter.RawValue{}
			}
		}
		// Approvals last: an undelete or stop in the same task is applied
		// first, and the delete is checked against the state it leaves.
		var raw converter.RawValue
		for w.approvals.ReceiveAsync(&raw) {
			w.serveApproval(ctx, raw)
			raw = converter.RawValue{}
		}
	}
}

func (w *item) signalsPending() bool {
	for _, s := range w.signals {
		if s.ch.Len() > 0 {
			return true
		}
	}
	return w.approvals.Len() > 0
}

func requester(by string) string {
	if by == "" {
		return anonymous
	}
	return by
}

func (w *item) scheduledBackup(ctx workflow.Context) {
	if d, err := Decide(w.st.ProtectionState, OpScheduledBackup, w.facts(workflow.Now(ctx))); err != nil || !d.Backup {
		return
	}
	due := w.st.NextBackupAt
	_ = w.backup(ctx, string(OpScheduledBackup), scheduler)
	// Keep the cadence; after an outage, one backup catches up, not many.
	now := workflow.Now(ctx)
	next := due.Add(w.frequency)
	if !next.After(now) {
		next = next.Add(now.Sub(next).Truncate(w.frequency) + w.frequency)
	}
	w.st.NextBackupAt = next
	// A delete or stop that arrived during the backup keeps every point.
	w.serveSignals(ctx)
	w.collectGarbage(ctx)
}

// backup makes one recovery point. Failures are recorded and returned; the
// item stays as it is and the next scheduled backup tries again.
func (w *item) backup(ctx workflow.Context, op, by string) error {
	if err := w.storeLock.Lock(ctx); err != nil {
		return err
	}
	defer w.storeLock.Unlock()
	now := workflow.Now(ctx)
	// The item may have been stopped or deleted while this waited its turn.
	check := OpScheduledBackup
	if op == UpdateBackupNow {
		check = OpBackupNow
	}
	if d, err := Decide(w.st.ProtectionState, check, w.facts(now)); err != nil || !d.Backup {
		if err == nil {
			err = &Refusal{Message: fmt.Sprintf("item %s is no longer protected: no backup taken", w.in.ItemID)}
		}
		return err
	}
	w.st.BackupSequence++
	in := activities.BackupInput{
		VaultID:         w.in.VaultID,
		ItemID:          w.in.ItemID,
		RecoveryPointID: fmt.Sprintf("rp-%s-%d", now.UTC().Format("20060102T150405Z"), w.st.BackupSequence),
		SourcePath:      w.in.SourcePath,
		CreatedAt:       now.UTC(),
		ExpiresAt:       now.UTC().Add(time.Duration(w.in.Policy.RetentionDays) * 24 * time.Hour),
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
		},
	})
	var res activities.BackupResult
	err := workflow.ExecuteActivity(actx, acts.Backup, in).Get(ctx, &res)
	if err != nil {
		w.audit(ctx, op, by, OutcomeFailed, "backup failed: "+message(err))
		return err
	}
	w.st.RecoveryPoints = append(w.st.RecoveryPoints, res.RecoveryPoint)
	w.st.LastBackupTime = now
	if op != string(OpScheduledBackup) {
		detail := fmt.Sprintf("recovery point %s: %s, %s stored", res.RecoveryPoint.ID, Plural(res.Files, "file"), Plural(int(res.RecoveryPoint.SizeBytes), "byte"))
		if len(res.Skipped) > 0 {
			detail += fmt.Sprintf("; %s skipped", Plural(len(res.Skipped), "special file"))
		}
		w.audit(ctx, op, by, OutcomeAccepted, detail)
	}
	return nil
}

// collectGarbage removes expired recovery points, only while protected, and
// never the newest one: an item whose backups keep failing keeps its last
// good point.
func (w *item) collectGarbage(ctx workflow.Context) {
	if err := w.storeLock.Lock(ctx); err != nil {
		return
	}
	defer w.storeLock.Unlock()
	if w.st.ProtectionState != Protected {
		return
	}
	w.st.GarbagePending = false
	now := workflow.Now(ctx)
	var expired []string
	for i, rp := range w.st.RecoveryPoints {
		if i < len(w.st.RecoveryPoints)-1 && !rp.ExpiresAt.After(now) {
			expired = append(expired, rp.ID)
		}
	}
	if len(expired) == 0 {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        10,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
		},
	})
	in := activities.DeleteInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, RecoveryPointIDs: expired}
	w.collecting = true
	err := workflow.ExecuteActivity(actx, acts.DeleteRecoveryPoints, in).Get(ctx, nil)
	w.collecting = false
	if err != nil {
		// Points stay listed and are collected after the next backup.
		w.audit(ctx, "garbageCollection", system, OutcomeFailed, message(err))
		return
	}
	w.st.RecoveryPoints = slices.DeleteFunc(w.st.RecoveryPoints, func(rp activities.RecoveryPoint) bool {
		return slices.Contains(expired, rp.ID)
	})
	w.audit(ctx, "garbageCollection", system, OutcomeAccepted,
		fmt.Sprintf("removed %s: %s", Plural(len(expired), "expired recovery point"), strings.Join(expired, ", ")))
}

// purge destroys the item's data. The activity is idempotent and retried
// until it succeeds: the deadline has passed and nothing can stop it now.
func (w *item) purge(ctx workflow.Context) error {
	if err := w.storeLock.Lock(ctx); err != nil {
		return err
	}
	defer w.storeLock.Unlock()
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		// A worker that dies mid-purge is noticed within this, and another
		// finishes the purge.
		HeartbeatTimeout: 20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second,
			MaximumInterval: 10 * time.Minute,
		},
	})
	in := activities.DeleteInput{VaultID: w.in.VaultID, ItemID: w.in.ItemID, All: true}
	if err := workflow.ExecuteActivity(actx, acts.DeleteRecoveryPoints, in).Get(ctx, nil); err != nil {
		return err
	}
	n := len(w.st.RecoveryPoints)
	w.st.RecoveryPoints = nil
	_, err := w.apply(ctx, OpPurgeDone, system, "")
	if err == nil {
		w.st.Audit[len(w.st.Audit)-1].Detail = fmt.Sprintf("purged: %s destroyed", Plural(n, "recovery point"))
	}
	return err
}

// finish completes a purged item once every handler has answered.
func (w *item) finish(ctx workflow.Context) (Status, error) {
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) && w.caughtUp() })
	w.serveSignals(ctx)
	return w.status(workflow.Now(ctx)), nil
}

func (w *item) restore(ctx workflow.Context, req RestoreRequest) (Status, error) {
	by := requester(req.RequestedBy)
	if err := w.storeLock.Lock(ctx); err != nil {
		return Status{}, err
	}
	defer w.storeLock.Unlock()
	// The state may have changed while waiting for the store.
	now := workflow.Now(ctx)
	if _, err := Decide(w.st.ProtectionState, OpRestore, w.facts(now)); err != nil {
		w.audit(ctx, string(OpRestore), by, OutcomeRejected, err.Error())
		return Status{}, refused(err)
	}
	rp, err := w.recoveryPoint(req.RecoveryPointID)
	if err != nil {
		w.audit(ctx, string(OpRestore), by, OutcomeRejected, err.Error())
		return Status{}, refused(err)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: activities.NonRetryableErrorTypes,
		},
	})
	in := activities.RestoreInput{
		VaultID: w.in.VaultID, ItemID: w.in.ItemID, RecoveryPointID: rp.ID, SHA256: rp.SHA256, TargetPath: req.TargetPath,
	}
	var res activities.RestoreResult
	if err := workflow.ExecuteActivity(actx, acts.Restore, in).Get(ctx, &res); err != nil {
		if badTarget(err) {
			// Refused before anything was written: the target is wrong.
			msg := message(err) + "; nothing was written"
			w.audit(ctx, string(OpRestore), by, OutcomeRejected, msg)
			return Status{}, refused(errors.New(msg))
		}
		msg := fmt.Sprintf("restore of %s to %s failed: %s", rp.ID, req.TargetPath, message(err))
		w.audit(ctx, string(OpRestore), by, OutcomeFailed, msg)
		return Status{}, temporal.NewNonRetryableApplicationError(msg, "RestoreFailed", nil)
	}
	w.audit(ctx, string(OpRestore), by, OutcomeAccepted,
		fmt.Sprintf("restored %s to %s: %s, %s, every checksum verified", rp.ID, req.TargetPath, Plural(res.Files, "file"), Plural(int(res.Bytes), "byte")))
	return w.status(workflow.Now(ctx)), nil
}

func (w *item) recoveryPoint(id string) (activities.RecoveryPoint, error) {
	for _, rp := range w.st.RecoveryPoints {
		if rp.ID == id {
			return rp, nil
		}
	}
	return activities.RecoveryPoint{}, fmt.Errorf("item %s has no recovery point %q: the status query lists the %s it has", w.in.ItemID, id, Plural(len(w.st.RecoveryPoints), "recovery point"))
}

// readyToContinueAsNew is true when the history should be cut and no update
// handler is running. Until then the loop goes on serving signals and
// timers, so a long restore never holds them up.
func (w *item) readyToContinueAsNew(ctx workflow.Context) bool {
	// A report or alert in flight is not waited for: the new run reports
	// its state afresh and the alert stays in the carried outbox.
	info := workflow.GetInfo(ctx)
	return (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxHistoryLength) &&
		workflow.AllHandlersFinished(ctx)
}

// continueAsNew carries the whole state, the deadline included, into a new
// run. Signals still buffered would be lost, so it serves them first;
// nothing can arrive between that and the command, which is sent in the
// same workflow task.
func (w *item) continueAsNew(ctx workflow.Context) (Status, error) {
	w.serveSignals(ctx)
	next := w.in
	st := w.st
	next.State = &st
	return Status{}, workflow.NewContinueAsNewError(ctx, WorkflowType, next)
}

func (w *item) audit(ctx workflow.Context, op, by, outcome, detail string) {
	w.st.Audit = appendAudit(w.st.Audit, AuditEntry{
		Time: workflow.Now(ctx).UTC(), Operation: op, RequestedBy: by, Outcome: outcome, Detail: detail,
	})
}

// publish upserts the search attributes when what they say has changed.
func (w *item) publish(ctx workflow.Context) {
	state, at, key := w.visible()
	if key == w.published {
		return
	}
	w.published = key
	deadline := DeadlineAttribute.ValueUnset()
	if !at.IsZero() {
		deadline = DeadlineAttribute.ValueSet(at)
	}
	err := workflow.UpsertTypedSearchAttributes(ctx,
		VaultIDAttribute.ValueSet(w.in.VaultID), StateAttribute.ValueSet(string(state)), deadline)
	if err != nil {
		workflow.GetLogger(ctx).Error("Search attributes not updated", "error", err)
	}
}

// status is the answer of the status query and of every update. now is
// only used for the time left before the purge.
func (w *item) status(now time.Time) Status {
	s := Status{
		VaultID:         w.in.VaultID,
		ItemID:          w.in.ItemID,
		SourcePath:      w.in.SourcePath,
		Policy:          w.in.Policy,
		ProtectionState: VisibleState(w.st.ProtectionState),
		RecoveryPoints:  append([]activities.RecoveryPoint{}, w.st.RecoveryPoints...),
		Audit:           append([]AuditEntry{}, w.st.Audit...),
	}
	if s.ProtectionState == SoftDeleted {
		s.IsScheduledForDeferredDelete = true
		s.DeferredDeleteTimeInUTC = w.st.Deadline.UTC().Format(time.RFC3339)
		s.DeferredDeleteTimeRemaining = FormatRemaining(w.st.Deadline.Sub(now))
	}
	if !w.st.LastBackupTime.IsZero() {
		s.LastBackupTime = w.st.LastBackupTime.UTC().Format(time.RFC3339)
	}
	s.SoftDeleteRetentionOverride = w.settings.overrideNote()
	// The window that applies: the one the delete got, or before a delete
	// the one it would get as far as the item knows its vault.
	var window time.Duration
	if !w.st.DeletedAt.IsZero() && w.st.ProtectionState != Protected && w.st.ProtectionState != ProtectionStopped {
		window = w.st.Deadline.Sub(w.st.DeletedAt)
	} else {
		in := w.windowInputs(w.settings.window())
		s.SoftDeleteWindowInputs = &in
		window, _ = in.Window(DefaultSoftDeleteSettings())
	}
	s.SoftDeleteRetentionDays = int(window / (24 * time.Hour))
	s.SoftDeleteWindow = WindowText(window)
	return s
}

// message is the sentence of an activity failure, without the SDK's wrapping.
func message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// badTarget is a restore refused for its target: not absolute, not
// empty, in the store.
func badTarget(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && (app.Type() == activities.ErrTypeTargetNotEmpty || app.Type() == activities.ErrTypeInvalidInput)
}

func isBadSource(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == activities.ErrTypeSourceMissing
}
