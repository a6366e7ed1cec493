// Package item is a backup item's workflow: Decide (decide.go) is its
// rulebook, and BackupItem (workflow.go) feeds it events and runs its effects.
package item

import (
	"slices"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// BackupItem is one backup item from its first backup to its purge.
func BackupItem(ctx workflow.Context, in ItemInput) (Status, error) {
	return backupItem(ctx, in, protocol.Settings{})
}

// NewBackupItem returns the BackupItem workflow bound to a worker's
// settings; register it under WorkflowType.
func NewBackupItem(s protocol.Settings) func(workflow.Context, ItemInput) (Status, error) {
	return func(ctx workflow.Context, in ItemInput) (Status, error) { return backupItem(ctx, in, s) }
}

// maxHistoryLength bounds one run's history, in events, whether or not the
// server suggests continue-as-new.
const maxHistoryLength = 4000

func backupItem(ctx workflow.Context, in ItemInput, settings protocol.Settings) (Status, error) {
	if err := in.Validate(); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	if err := protocol.CheckIdentity(ctx, protocol.WorkflowID(in.VaultID, in.ItemID)); err != nil {
		return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	w := newItem(ctx, in, settings)
	// Handlers first: an update delivered in the run's first task must find
	// them. Their events wait in the queue until the run is under way.
	if err := w.registerHandlers(ctx); err != nil {
		return Status{}, err
	}
	if in.State != nil {
		err := protocol.CheckCarriedState(ctx)
		if err == nil {
			err = in.State.validate()
		}
		if err != nil {
			return Status{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
		}
		w.st = *in.State
		// The visible state is already published and reported; the clock
		// starts again from the state.
		w.published = w.visible()
		w.arm(ctx)
	} else if err := w.protect(ctx); err != nil {
		return Status{}, err
	}
	return w.run(ctx)
}

type item struct {
	in          ItemInput
	st          ItemState
	settings    protocol.Settings
	incarnation string
	// inbox holds what was received and not decided yet; replies, the
	// updates waiting for the outcome of theirs.
	inbox   inbox
	replies replies
	// wake fires when Decide has something due: the item's one timer.
	wake protocol.Timer
	// published is what the search attributes say.
	published shown
	// The store takes one effect at a time; the vault and the operators
	// are told one report at a time, which carries all that is due.
	store   storeLane
	reports reportLane
}

// inbox holds the signal channels, in the order their pending signals
// become events (receive), and the events not decided yet, in order.
type inbox struct {
	signals []signalChannel
	events  []Event
}

// replies are the updates waiting for their outcome, by Ref.
type replies struct {
	waiting map[int]*reply
	last    int
}

// storeLane runs the effects on the item's store one at a time.
type storeLane struct {
	queue      []Effect
	busy       bool
	collecting bool
}

// reportLane tells the vault and the operators what is due, one report at
// a time: the alerts, and whether the item must register with its vault.
type reportLane struct {
	alerts   []protocol.Alert
	register bool
	busy     bool
}

type signalChannel struct {
	op protocol.Operation
	ch workflow.ReceiveChannel
}

func newItem(ctx workflow.Context, in ItemInput, settings protocol.Settings) *item {
	w := &item{in: in, settings: settings, replies: replies{waiting: map[int]*reply{}}, incarnation: workflow.GetInfo(ctx).FirstRunID,
		st: ItemState{ProtectionState: protocol.Protected}}
	w.in.State = nil
	for _, op := range signalOrder {
		w.inbox.signals = append(w.inbox.signals, signalChannel{op, workflow.GetSignalChannel(ctx, string(op))})
	}
	return w
}

// signalOrder is the order in which signals of different names arriving in
// one task become events, so that the data-keeping outcome wins.
var signalOrder = []protocol.Operation{protocol.OpResume, protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpApproved}

// protect takes the first backup, which proves the source, before the item
// shows itself anywhere: a missing source leaves nothing behind.
func (w *item) protect(ctx workflow.Context) error {
	d, _ := Decide(w.st, Event{Op: OpProtect, By: signing.System}, w.inputs(ctx))
	w.st = d.State
	done := w.runStoreEffect(ctx, d.Effects[0])
	if f := done.Failure; f != nil && f.Refused {
		return temporal.NewNonRetryableApplicationError(f.Message, protocol.ErrTypeSourceMissing, nil)
	}
	w.handle(ctx, done)
	return nil
}

// run is the item's life: take the next event, decide it, commit it, run
// its effects; wait when there is nothing to do.
func (w *item) run(ctx workflow.Context) (Status, error) {
	for {
		if ctx.Err() != nil {
			// A cancelled item stops with its data intact; only the purge
			// timer may destroy data.
			return w.status(workflow.Now(ctx)), ctx.Err()
		}
		// Signals before the timer: an undelete that came with the purge's
		// firing is decided first.
		w.receive()
		if w.wake.Take(ctx) {
			w.inbox.events = append(w.inbox.events, Event{Op: OpWakeUp})
		}
		if ev, ok := w.next(); ok {
			w.handle(ctx, ev)
			continue
		}
		// Effects start once every event received is decided, so each
		// store effect is checked against the state they leave.
		w.dispatch(ctx)
		switch {
		case w.finished(ctx):
			return w.status(workflow.Now(ctx)), nil
		case w.readyToContinueAsNew(ctx):
			next := w.in
			st := w.st
			next.State = &st
			return Status{}, workflow.NewContinueAsNewError(ctx, protocol.WorkflowType, next)
		}
		_ = workflow.Await(ctx, func() bool {
			return w.decidable() || w.signalsPending() || w.wake.Ready() ||
				w.finished(ctx) || w.readyToContinueAsNew(ctx)
		})
	}
}

// receive turns pending signals into events, in signalOrder. Payloads are
// decoded here: one the SDK could not decode would be dropped silently.
func (w *item) receive() {
	for _, s := range w.inbox.signals {
		var raw converter.RawValue
		for s.ch.ReceiveAsync(&raw) {
			w.inbox.events = append(w.inbox.events, signalEvent(s.op, raw))
			raw = converter.RawValue{}
		}
	}
}

// decidable is true when next has an event to give.
func (w *item) decidable() bool {
	return slices.ContainsFunc(w.inbox.events, func(ev Event) bool { return !w.store.collecting || !ev.Op.ByPerson() })
}

// next takes the first event that may be decided now: a person's waits
// while a garbage collection runs, so kept points never vanish under it.
func (w *item) next() (Event, bool) {
	for i, ev := range w.inbox.events {
		if w.store.collecting && ev.Op.ByPerson() {
			continue
		}
		w.inbox.events = slices.Delete(w.inbox.events, i, i+1)
		if ev.Op == OpCollectDone {
			w.store.collecting = false
		}
		return ev, true
	}
	return Event{}, false
}

func (w *item) signalsPending() bool {
	for _, s := range w.inbox.signals {
		if s.ch.Len() > 0 {
			return true
		}
	}
	return false
}

// handle decides one event and commits the decision. Asking the vault is
// the only blocking step, and it comes before the decision.
func (w *item) handle(ctx workflow.Context, ev Event) {
	in := w.inputs(ctx)
	d, err := Decide(w.st, ev, in)
	if err == nil && d.Ask == AskVault {
		in.Vault = w.askVault(ctx, ev)
		in.Now = workflow.Now(ctx)
		d, err = Decide(w.st, ev, in)
	}
	if err != nil {
		// A refusal changes nothing but the audit trail.
		w.st.Audit = protocol.AppendAudit(w.st.Audit, protocol.AuditEntry{Time: in.Now.UTC(), Operation: string(ev.Op),
			RequestedBy: protocol.Requester(ev.By), Outcome: protocol.OutcomeRejected, Detail: err.Error()})
		w.answer(ev.Ref, err, nil)
		return
	}
	w.commit(ctx, ev, d)
}

func (w *item) inputs(ctx workflow.Context) Inputs {
	return Inputs{Item: w.in, Now: workflow.Now(ctx)}
}

// commit keeps a decision without blocking: state, audit, search
// attributes, timer, then the effects; the one who asked is answered.
func (w *item) commit(ctx workflow.Context, ev Event, d Decision) {
	w.st = d.State
	if d.Audit != nil {
		w.st.Audit = protocol.AppendAudit(w.st.Audit, *d.Audit)
	}
	w.inbox.events = append(w.inbox.events, d.Next...)
	w.publish(ctx)
	w.arm(ctx)
	waits := false
	for _, e := range d.Effects {
		switch e.Kind {
		case EffectReport:
			for _, a := range e.Alerts {
				w.reports.alerts = append(w.reports.alerts, a.Bounded())
			}
			w.reports.register = w.reports.register || e.Register
		default:
			w.store.queue = append(w.store.queue, e)
			waits = waits || (e.Ref != 0 && e.Ref == ev.Ref)
		}
	}
	if !waits {
		w.answer(ev.Ref, w.outcome(ev), d.Pending)
	}
}

// arm keeps the wake-up timer at the next time Decide has something due.
func (w *item) arm(ctx workflow.Context) {
	every, _ := w.in.Policy.VerifyInterval()
	w.wake.Arm(ctx, w.st.WakeAt(every), "wake up: "+string(w.st.ProtectionState))
}

// dispatch starts the next store effect the state still allows, and one
// report carrying everything due.
func (w *item) dispatch(ctx workflow.Context) {
	for !w.store.busy && len(w.store.queue) > 0 {
		e := w.store.queue[0]
		w.store.queue = w.store.queue[1:]
		if err := Runnable(w.st, e, w.in); err != nil {
			w.answer(e.Ref, err, nil)
			continue
		}
		w.store.busy, w.store.collecting = true, e.Kind == EffectCollect
		workflow.Go(ctx, func(ctx workflow.Context) {
			done := w.runStoreEffect(ctx, e)
			w.store.busy = false
			w.inbox.events = append(w.inbox.events, done)
		})
	}
	if !w.reports.busy && (w.reports.register || len(w.reports.alerts) > 0) {
		in := w.reportOf(Effect{Register: w.reports.register, Alerts: w.reports.alerts})
		w.reports.alerts, w.reports.register, w.reports.busy = nil, false, true
		workflow.Go(ctx, func(ctx workflow.Context) {
			done := w.report(ctx, in)
			w.reports.busy = false
			w.inbox.events = append(w.inbox.events, done)
		})
	}
}

// idle is true when nothing is queued, running or waiting to be told.
func (w *item) idle(ctx workflow.Context) bool {
	return len(w.inbox.events) == 0 && !w.signalsPending() && !w.store.busy && len(w.store.queue) == 0 &&
		!w.reports.busy && !w.reports.register && len(w.reports.alerts) == 0 && workflow.AllHandlersFinished(ctx)
}

// finished is true once a purged item has answered everyone.
func (w *item) finished(ctx workflow.Context) bool {
	return w.st.ProtectionState == protocol.Purged && w.idle(ctx)
}

// readyToContinueAsNew is true when the history should be cut and nothing
// is in flight, so no signal is left behind.
func (w *item) readyToContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxHistoryLength) && w.idle(ctx)
}

// shown is what an item's search attributes say, kept to send only what
// changed.
type shown struct {
	state            protocol.State
	deadline         time.Time
	waiting, anomaly bool
}

func (w *item) visible() shown {
	s := shown{state: protocol.VisibleState(w.st.ProtectionState), waiting: w.st.waiting(protocol.OpDelete, "") >= 0,
		anomaly: protocol.Anomaly(w.st.RecoveryPoints) != nil}
	if s.state == protocol.SoftDeleted {
		s.deadline = w.st.Deadline.UTC()
	}
	return s
}

// publish upserts the search attributes when they changed; waiting and
// anomaly only once true, so most items never carry them.
func (w *item) publish(ctx workflow.Context) {
	now, was := w.visible(), w.published
	if now.state == was.state && now.deadline.Equal(was.deadline) && now.waiting == was.waiting && now.anomaly == was.anomaly {
		return
	}
	w.published = now
	deadline := protocol.DeadlineAttribute.ValueUnset()
	if !now.deadline.IsZero() {
		deadline = protocol.DeadlineAttribute.ValueSet(now.deadline)
	}
	updates := []temporal.SearchAttributeUpdate{protocol.VaultIDAttribute.ValueSet(w.in.VaultID), protocol.StateAttribute.ValueSet(string(now.state)), deadline}
	switch {
	case now.waiting:
		updates = append(updates, protocol.WaitingAttribute.ValueSet(protocol.WaitingDelete))
	case was.waiting:
		updates = append(updates, protocol.WaitingAttribute.ValueUnset())
	}
	switch {
	case now.anomaly:
		updates = append(updates, protocol.AnomalyAttribute.ValueSet(protocol.AnomalySuspect))
	case was.anomaly:
		updates = append(updates, protocol.AnomalyAttribute.ValueUnset())
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Error("Search attributes not updated", "error", err)
	}
}
