package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
)

// maxApprovalsUsed bounds the approvals an item remembers; a request ID is
// never reused by a vault, and one item rarely has many deletes approved.
const maxApprovalsUsed = 50

// requestApproval registers a delete at the vault, whose multi-user
// authorization makes it wait for an approver. Nothing else changes.
func (w *item) requestApproval(ctx workflow.Context, by, reason string) (Decision, error) {
	actx := withWorkflowCall(ctx)
	payload, _ := json.Marshal(ItemDeleteRequest{ItemID: w.in.ItemID, RequestedBy: by, Reason: reason})
	in := activities.MessageInput{
		WorkflowID: VaultWorkflowID(w.in.VaultID), WorkflowType: VaultWorkflowType, Name: UpdateRequestItemDelete, Payload: payload,
	}
	var raw json.RawMessage
	var r MuaRequest
	err := workflow.ExecuteActivity(actx, acts.Update, in).Get(ctx, &raw)
	if err == nil {
		err = json.Unmarshal(raw, &r)
	}
	if err != nil {
		refusal := &Refusal{Message: fmt.Sprintf(
			"deletes of item %s need approval at vault %s, which could not register this one (%s): nothing changed, try again",
			w.in.ItemID, w.in.VaultID, message(err))}
		w.audit(ctx, string(OpDelete), by, OutcomeRejected, refusal.Message)
		return Decision{}, refusal
	}
	w.steps++
	w.audit(ctx, string(OpDelete), by, OutcomePending, fmt.Sprintf("request %s at vault %s: %s", r.RequestID, w.in.VaultID, r.Detail))
	w.version++
	return Decision{Next: w.st.ProtectionState, NoOp: true, Pending: &r}, nil
}

// serveApproval carries out an approved delete once the vault confirms the
// approval: the signal alone proves nothing, anyone can send it.
func (w *item) serveApproval(ctx workflow.Context, raw converter.RawValue) {
	var a DeleteApproval
	err := decodePayload(SignalDeleteApproved, raw, &a, `{"requestId": "r-1"}`)
	var r MuaRequest
	if err == nil {
		r, err = w.checkApproval(ctx, a.RequestID)
	}
	if err != nil {
		w.audit(ctx, string(OpDelete), anonymous, OutcomeRejected, "approval not confirmed by the vault, nothing changed: "+err.Error())
		w.version++
		return
	}
	w.st.ApprovalsUsed = append(w.st.ApprovalsUsed, r.RequestID)
	if n := len(w.st.ApprovalsUsed); n > maxApprovalsUsed {
		w.st.ApprovalsUsed = w.st.ApprovalsUsed[n-maxApprovalsUsed:]
	}
	reason := fmt.Sprintf("approved by %s (request %s)", r.DecidedBy, r.RequestID)
	if r.Reason != "" {
		reason = r.Reason + "; " + reason
	}
	_, _ = w.applyApproved(ctx, OpDelete, r.RequestedBy, reason, &r)
}

// checkApproval finds request id at the vault, approved, for a delete of
// this item, and not yet used here.
func (w *item) checkApproval(ctx workflow.Context, id string) (MuaRequest, error) {
	if slices.Contains(w.st.ApprovalsUsed, id) {
		return MuaRequest{}, fmt.Errorf("request %s has already been carried out", id)
	}
	var requests []MuaRequest
	if err := queryWorkflow(ctx, VaultWorkflowID(w.in.VaultID), VaultWorkflowType, QueryMuaRequests, &requests); err != nil {
		return MuaRequest{}, fmt.Errorf("vault %s could not be asked about request %s: %s", w.in.VaultID, id, message(err))
	}
	for _, r := range requests {
		if r.RequestID != id {
			continue
		}
		if r.Operation != string(OpDelete) || r.ItemID != w.in.ItemID {
			return MuaRequest{}, fmt.Errorf("request %s at vault %s is not a delete of item %s", id, w.in.VaultID, w.in.ItemID)
		}
		if r.State != RequestApproved {
			return MuaRequest{}, fmt.Errorf("request %s at vault %s is %s, not Approved", id, w.in.VaultID, r.State)
		}
		return r, nil
	}
	return MuaRequest{}, fmt.Errorf("vault %s holds no request %s", w.in.VaultID, id)
}

// withWorkflowCall has the options of a short call to another workflow of
// ours: a few retries, and none when it is not running.
func withWorkflowCall(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{activities.ErrTypeNoVault},
		},
	})
}

// queryWorkflow answers a query of a running workflow of the given type,
// through an activity, so the answer is recorded in the history.
func queryWorkflow(ctx workflow.Context, workflowID, workflowType, query string, into any) error {
	var raw json.RawMessage
	err := workflow.ExecuteActivity(withWorkflowCall(ctx), acts.QueryRunning, workflowID, workflowType, query).Get(ctx, &raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}
