package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// registerHandlers sets up the status query and the updates. An update is
// an event like a signal: its validator is Decide's refusal, so a refused
// update leaves no trace in the history and the caller reads why; its
// handler queues the event after the signals that reached the workflow
// before it, and answers with the outcome.
func (w *item) registerHandlers(ctx workflow.Context) error {
	// A query is not recorded in the history, so reading the wall clock here
	// is safe; workflow.Now alone is the time of the last workflow task, and
	// an idle soft-deleted item would show a countdown that never moves. The
	// later of the two is taken, so a worker clock running behind never
	// shows more time left than the workflow's own clock.
	err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) {
		now := workflow.Now(ctx)
		//workflowcheck:ignore
		if wall := time.Now(); wall.After(now) {
			now = wall
		}
		return w.status(now), nil
	})
	if err != nil {
		return err
	}
	for _, op := range UserOperations {
		err := workflow.SetUpdateHandlerWithOptions(ctx, string(op),
			func(ctx workflow.Context, raw converter.RawValue) (Status, error) {
				ev, err := updateEvent(op, raw)
				if err != nil {
					return Status{}, refused(err)
				}
				before := w.st.ProtectionState
				predicted, _ := Decide(w.st, ev, w.inputs(ctx))
				r := w.submit(ev)
				if err := workflow.Await(ctx, func() bool { return r.done }); err != nil {
					return Status{}, err
				}
				var refusal *Refusal
				switch {
				case errors.As(r.err, &refusal) && predicted.State.ProtectionState != before && w.st.ProtectionState == predicted.State.ProtectionState:
					// A signal of the same kind got there first: the change
					// asked for is done.
					return w.status(workflow.Now(ctx)), nil
				case refusal != nil:
					return Status{}, refused(r.err)
				case r.err != nil:
					return Status{}, r.err
				}
				st := w.status(workflow.Now(ctx))
				st.PendingApproval = r.pending
				return st, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
				ev, err := updateEvent(op, raw)
				if err == nil {
					_, err = Decide(w.st, ev, w.inputs(ctx))
				}
				return refused(err)
			}},
		)
		if err != nil {
			return err
		}
	}
	return nil
}

// reply is what an update waits for: the outcome of its event.
type reply struct {
	done    bool
	err     error
	pending *MuaRequest
}

// submit queues an update's event after the signals already received, and
// returns where its outcome will be.
func (w *item) submit(ev Event) *reply {
	w.receive()
	w.lastRef++
	ev.Ref = w.lastRef
	r := &reply{}
	w.replies[ev.Ref] = r
	w.events = append(w.events, ev)
	return r
}

// answer gives the update waiting on ref its outcome: nil, a *Refusal, or
// the failure to answer with. Signals wait for nothing.
func (w *item) answer(ref int, err error, pending *MuaRequest) {
	r, ok := w.replies[ref]
	if !ok {
		return
	}
	delete(w.replies, ref)
	r.done, r.err, r.pending = true, err, pending
}

// outcome is the answer an update gets for the result of its effect: a
// backup or restore that failed fails the update, a restore refused for its
// target is a refusal.
func (w *item) outcome(ev Event) error {
	f := ev.Failure
	switch {
	case f == nil:
		return nil
	case f.Refused && ev.Op == OpRestoreDone:
		return &Refusal{Message: f.Message}
	case ev.Op == OpBackupDone:
		return temporal.NewNonRetryableApplicationError("backup of item "+w.in.ItemID+" failed: "+f.Message, "BackupFailed", nil)
	}
	return temporal.NewNonRetryableApplicationError(f.Message, "RestoreFailed", nil)
}

// updateEvent reads an update's payload into its event.
func updateEvent(op Operation, raw converter.RawValue) (Event, error) {
	if op == OpRestore {
		req, err := DecodeRestoreRequest(raw)
		return Event{Op: op, By: requester(req.RequestedBy), RecoveryPointID: req.RecoveryPointID, TargetPath: req.TargetPath}, err
	}
	req, err := DecodeRequest(string(op), raw)
	return Event{Op: op, By: requester(req.RequestedBy), Reason: req.Reason, Input: signedInput(raw)}, err
}

// signalEvent reads a signal's payload into its event; one that cannot be
// read is an event that changes nothing and is audited.
func signalEvent(op Operation, raw converter.RawValue) Event {
	if op == OpApproved {
		var a DeleteApproval
		if err := decodePayload(SignalDeleteApproved, raw, &a, `{"requestId": "r-1"}`); err != nil {
			return Event{Op: op, By: anonymous, Malformed: err.Error()}
		}
		return Event{Op: op, By: anonymous, RequestID: a.RequestID, Approval: a.Approval}
	}
	req, err := DecodeRequest(string(op), raw)
	if err != nil {
		return Event{Op: op, By: anonymous, Malformed: err.Error()}
	}
	return Event{Op: op, By: requester(req.RequestedBy), Reason: req.Reason, Input: signedInput(raw)}
}

func requester(by string) string {
	if by == "" {
		return anonymous
	}
	return by
}

// ErrTypeRefused is the error type of every refused operation.
const ErrTypeRefused = "OperationRefused"

// refused marks a refusal as final for every client: the Temporal CLI prints
// the type and whether retrying could help, and it cannot.
func refused(err error) error {
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRefused, nil)
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
		RecoveryPoints:  append([]RecoveryPoint{}, w.st.RecoveryPoints...),
		Audit:           append([]AuditEntry{}, w.st.Audit...),
	}
	if p := w.st.PendingDelete; p != nil {
		waiting := *p
		s.PendingDelete = &waiting
	}
	for _, a := range w.st.AwaitingApproval {
		if c := a.Confirming; c != nil {
			s.ConfirmingApproval = &ConfirmingApproval{RequestID: a.RequestID, ApprovedBy: c.By, Attempts: c.Attempts, Why: c.Why}
		}
	}
	if s.ProtectionState == SoftDeleted {
		s.IsScheduledForDeferredDelete = true
		s.DeferredDeleteTimeInUTC = w.st.Deadline.UTC().Format(time.RFC3339)
		s.DeferredDeleteTimeRemaining = FormatRemaining(w.st.Deadline.Sub(now))
	}
	if !w.st.LastBackupTime.IsZero() {
		s.LastBackupTime = w.st.LastBackupTime.UTC().Format(time.RFC3339)
	}
	if !w.st.LockedUntil.IsZero() {
		s.ObjectsLockedUntil = w.st.LockedUntil.UTC().Format(time.RFC3339)
	}
	s.SoftDeleteRetentionOverride = w.settings.overrideNote()
	s.ObjectLock = w.settings.ObjectLock
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

// windowInputs are the item's part in the window of a delete made now.
func (w *item) windowInputs(o windowSetting) WindowInputs {
	return WindowInputs{ItemDays: w.in.SoftDeleteRetentionDays, Floor: w.st.VaultFloor, Override: o}
}
