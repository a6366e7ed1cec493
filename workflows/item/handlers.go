package item

import (
	"errors"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// registerHandlers sets up the status query and the updates. An update is
// an event like a signal; its validator is Decide's refusal.
func (w *item) registerHandlers(ctx workflow.Context) error {
	// Not in the history, so the wall clock may be read: a countdown then
	// moves while the item is idle, and never shows more than the workflow's.
	err := workflow.SetQueryHandler(ctx, protocol.QueryStatus, func() (Status, error) {
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
	for _, op := range protocol.UserOperations {
		err := workflow.SetUpdateHandlerWithOptions(ctx, string(op),
			func(ctx workflow.Context, raw converter.RawValue) (Status, error) {
				ev, err := updateEvent(op, raw)
				if err != nil {
					return Status{}, protocol.Final(err)
				}
				before := w.st.ProtectionState
				predicted, _ := Decide(w.st, ev, w.inputs(ctx))
				r := w.submit(ev)
				if err := workflow.Await(ctx, func() bool { return r.done }); err != nil {
					return Status{}, err
				}
				var refusal *protocol.Refusal
				switch {
				case errors.As(r.err, &refusal) && predicted.State.ProtectionState != before && w.st.ProtectionState == predicted.State.ProtectionState:
					// A signal of the same kind got there first: the change
					// asked for is done.
					return w.status(workflow.Now(ctx)), nil
				case refusal != nil:
					return Status{}, protocol.Final(r.err)
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
				return protocol.Final(err)
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
	pending *protocol.MuaRequest
}

// submit queues an update's event after the signals already received, and
// returns where its outcome will be.
func (w *item) submit(ev Event) *reply {
	w.receive()
	w.replies.last++
	ev.Ref = w.replies.last
	r := &reply{}
	w.replies.waiting[ev.Ref] = r
	w.inbox.events = append(w.inbox.events, ev)
	return r
}

// answer gives the update waiting on ref its outcome: nil, a *Refusal, or
// the failure to answer with. Signals wait for nothing.
func (w *item) answer(ref int, err error, pending *protocol.MuaRequest) {
	r, ok := w.replies.waiting[ref]
	if !ok {
		return
	}
	delete(w.replies.waiting, ref)
	r.done, r.err, r.pending = true, err, pending
}

// outcome is an update's answer for the result of its effect.
func (w *item) outcome(ev Event) error {
	f := ev.Failure
	switch {
	case f == nil:
		return nil
	case f.Refused && ev.Op == OpRestoreDone:
		return &protocol.Refusal{Message: f.Message, Code: protocol.CodeBadValue, Field: "targetPath"}
	case ev.Op == OpBackupDone:
		return temporal.NewNonRetryableApplicationError("backup of item "+w.in.ItemID+" failed: "+f.Message, "BackupFailed", nil)
	case ev.Op == OpVerifyDone && !f.Damaged:
		return temporal.NewNonRetryableApplicationError("recovery point "+ev.RecoveryPointID+" of item "+w.in.ItemID+" was not verified: "+f.Message, "VerifyNotRun", nil)
	case ev.Op == OpVerifyDone:
		return temporal.NewNonRetryableApplicationError("recovery point "+ev.RecoveryPointID+" of item "+w.in.ItemID+" did not verify: "+f.Message, protocol.ErrTypeVerifyFailed, nil)
	}
	return temporal.NewNonRetryableApplicationError(f.Message, "RestoreFailed", nil)
}

// updateEvent reads an update's payload into its event.
func updateEvent(op protocol.Operation, raw converter.RawValue) (Event, error) {
	switch op {
	case protocol.OpRestore:
		req, err := protocol.DecodeRestoreRequest(raw)
		return Event{Op: op, By: protocol.Requester(req.RequestedBy), RecoveryPointID: req.RecoveryPointID, TargetPath: req.TargetPath}, err
	case protocol.OpVerify:
		var req protocol.VerifyRequest
		err := protocol.DecodePayload(string(op), raw, &req, `{"recoveryPointId": "rp-...", "requestedBy": "alice"}`)
		return Event{Op: op, By: protocol.Requester(req.RequestedBy), RecoveryPointID: req.RecoveryPointID}, err
	}
	req, err := protocol.DecodeRequest(string(op), raw)
	return Event{Op: op, By: protocol.Requester(req.RequestedBy), Reason: req.Reason, Input: protocol.SignedInput(raw)}, err
}

// signalEvent reads a signal's payload into its event; one that cannot be
// read is an event that changes nothing and is audited.
func signalEvent(op protocol.Operation, raw converter.RawValue) Event {
	if op == protocol.OpApproved {
		var a protocol.DeleteApproval
		if err := protocol.DecodePayload(protocol.SignalDeleteApproved, raw, &a, `{"requestId": "r-1"}`); err != nil {
			return Event{Op: op, By: signing.Anonymous, Malformed: err.Error()}
		}
		return Event{Op: op, By: signing.Anonymous, RequestID: a.RequestID, Input: a.Approval}
	}
	req, err := protocol.DecodeRequest(string(op), raw)
	if err != nil {
		return Event{Op: op, By: signing.Anonymous, Malformed: err.Error()}
	}
	return Event{Op: op, By: protocol.Requester(req.RequestedBy), Reason: req.Reason, Input: protocol.SignedInput(raw)}
}
