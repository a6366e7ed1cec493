package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// registerHandlers sets up the status query and the updates. Every update
// has a validator that asks the same state machine as its handler, so a
// refused update leaves no trace in the history and the caller reads why.
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
	for _, op := range []Operation{OpStop, OpDelete, OpUndelete, OpResume} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, string(op),
			func(ctx workflow.Context, raw converter.RawValue) (Status, error) {
				if err := w.awaitVerified(ctx); err != nil {
					return Status{}, err
				}
				req, err := DecodeRequest(string(op), raw)
				if err != nil {
					return Status{}, refused(err)
				}
				// Signals that reached the workflow first are applied first.
				// Then this transition, before anything blocks: that is what
				// makes an undelete win over a timer firing in the same task.
				validated, _ := Decide(w.st.ProtectionState, op, w.facts(workflow.Now(ctx)))
				w.serveSignals(ctx)
				d, err := w.apply(ctx, op, requester(req.RequestedBy), req.Reason)
				if err != nil {
					// A signal of the same kind got there first: what was
					// asked is done.
					if w.st.ProtectionState == validated.Next {
						return w.status(workflow.Now(ctx)), nil
					}
					return Status{}, refused(err)
				}
				st := w.status(workflow.Now(ctx))
				st.PendingApproval = d.Pending
				return st, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
				if _, err := DecodeRequest(string(op), raw); err != nil {
					return refused(err)
				}
				_, err := Decide(w.st.ProtectionState, op, w.facts(workflow.Now(ctx)))
				return refused(err)
			}},
		)
		if err != nil {
			return err
		}
	}

	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateBackupNow,
		func(ctx workflow.Context, raw converter.RawValue) (Status, error) {
			if err := w.awaitVerified(ctx); err != nil {
				return Status{}, err
			}
			req, err := DecodeRequest(UpdateBackupNow, raw)
			if err != nil {
				return Status{}, refused(err)
			}
			w.serveSignals(ctx)
			if _, err := Decide(w.st.ProtectionState, OpBackupNow, w.facts(workflow.Now(ctx))); err != nil {
				return Status{}, refused(err)
			}
			if err := w.backup(ctx, UpdateBackupNow, requester(req.RequestedBy)); err != nil {
				var r *Refusal
				if errors.As(err, &r) {
					return Status{}, refused(err)
				}
				return Status{}, temporal.NewNonRetryableApplicationError(
					"backup of item "+w.in.ItemID+" failed: "+message(err), "BackupFailed", nil)
			}
			w.collectGarbage(ctx)
			return w.status(workflow.Now(ctx)), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
			if _, err := DecodeRequest(UpdateBackupNow, raw); err != nil {
				return refused(err)
			}
			_, err := Decide(w.st.ProtectionState, OpBackupNow, w.facts(workflow.Now(ctx)))
			return refused(err)
		}},
	)
	if err != nil {
		return err
	}

	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateRestore,
		func(ctx workflow.Context, raw converter.RawValue) (Status, error) {
			if err := w.awaitVerified(ctx); err != nil {
				return Status{}, err
			}
			req, err := DecodeRestoreRequest(raw)
			if err != nil {
				return Status{}, refused(err)
			}
			w.serveSignals(ctx)
			return w.restore(ctx, req)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
			req, err := DecodeRestoreRequest(raw)
			if err != nil {
				return refused(err)
			}
			if _, err := Decide(w.st.ProtectionState, OpRestore, w.facts(workflow.Now(ctx))); err != nil {
				return refused(err)
			}
			_, err = w.recoveryPoint(req.RecoveryPointID)
			return refused(err)
		}},
	)
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

// awaitVerified holds a handler until carried state is verified; on a run
// that carries none it returns at once, without yielding.
func (w *item) awaitVerified(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return w.verified })
}
