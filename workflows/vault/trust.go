package vault

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// realItem checks that a delete asking for approval comes from the item it
// names, in the incarnation it claims: any client can send itemDelete, and
// the vault must not open a request, which fills its bounded queue, for
// every forged one. An error is a check that could not be made (the server
// did not answer): the delete then waits at its item, it is not refused.
func (v *vault) realItem(ctx workflow.Context, itemID, incarnation string) (bool, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var run protocol.RunInfo
	if err := workflow.ExecuteActivity(actx, protocol.ActivityDescribeRun, protocol.WorkflowID(v.id, itemID), "").Get(ctx, &run); err != nil {
		return false, err
	}
	return run.Running && run.WorkflowType == protocol.WorkflowType && run.FirstRunID == incarnation, nil
}

// askedByItemInTurn is askedByItem, the deletes that ask it going on in
// the order they came: the checks run at once, and a delete judged after
// them is judged in its turn (its signature, the guard's count).
func (v *vault) askedByItemInTurn(ctx workflow.Context, itemID string) (string, error) {
	turn := v.checks
	v.checks++
	why, err := v.askedByItem(ctx, itemID)
	_ = workflow.Await(ctx, func() bool { return v.checked == turn })
	v.checked++
	return why, err
}

// askedByItem says why a delete did not come from the item that holds it,
// "" when it did: its update must be the one the item's AskVault activity
// sends (its ID is the item's run and the activity's, "run/activity"), and
// that activity must be running now. An error is a check that could not be
// made.
func (v *vault) askedByItem(ctx workflow.Context, itemID string) (string, error) {
	id := workflow.GetCurrentUpdateInfo(ctx).ID
	run, act, _ := strings.Cut(id, "/")
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var info protocol.RunInfo
	if err := workflow.ExecuteActivity(actx, protocol.ActivityDescribeRun, protocol.WorkflowID(v.id, itemID), "").Get(ctx, &info); err != nil {
		return "", err
	}
	if !info.Running || info.WorkflowType != protocol.WorkflowType || info.RunID != run || !slices.Contains(info.Asking, act) {
		return fmt.Sprintf("the delete of item %s did not come from the item (update %q): a delete reaches its vault from its item only; nothing changed",
			itemID, protocol.Clip(id, protocol.MaxNameBytes)), nil
	}
	return "", nil
}

// approvedDelete confirms, for an item carrying out a delete that waited
// for approval, that request id is an approved delete of that item, not
// carried out yet and within its window; it is then marked carried out, so
// the same approval counts once.
func (v *vault) approvedDelete(ctx workflow.Context, itemID, id string) (protocol.MuaRequest, error) {
	i := slices.IndexFunc(v.st.Requests, func(r protocol.MuaRequest) bool { return r.RequestID == id })
	if i < 0 {
		return protocol.MuaRequest{}, fmt.Errorf("vault %s holds no request %s, nothing changed", v.id, id)
	}
	r := &v.st.Requests[i]
	switch now := workflow.Now(ctx); {
	case r.Operation != string(protocol.OpDelete) || r.ItemID != itemID:
		return protocol.MuaRequest{}, fmt.Errorf("request %s at vault %s is not a delete of item %s, nothing changed", id, v.id, itemID)
	case r.State != protocol.RequestApproved:
		return protocol.MuaRequest{}, fmt.Errorf("request %s at vault %s is %s, not Approved: nothing changed", id, v.id, r.State)
	case r.CarriedOut:
		return protocol.MuaRequest{}, fmt.Errorf("request %s at vault %s has been carried out already: nothing changed", id, v.id)
	case !now.Before(r.ExpiresAt):
		// An approval is for then: one not carried out within the request's
		// window, say for an item that could not be told, must be asked again.
		return protocol.MuaRequest{}, fmt.Errorf("request %s was approved but its window ended at %s: nothing changed, ask again",
			id, protocol.FormatTime(r.ExpiresAt))
	}
	// Judged by the keys listed now: a key removed since the approval no
	// longer approves.
	if fp := signing.FingerprintOf(r.DecisionSigner); fp != "" {
		signers, _ := signing.ParseAllowedSigners(v.st.AllowedSigners)
		if !listedKey(signers, fp, r.DecidedBy) {
			return protocol.MuaRequest{}, fmt.Errorf("request %s was approved with key %s, which vault %s no longer lists for %s: nothing changed, ask again",
				id, fp, v.id, r.DecidedBy)
		}
	}
	r.CarriedOut = true
	return *r, nil
}

// authenticate checks a person's request to the vault against its allowed
// signers, and returns the signer for the audit. A vault without signers
// takes every request unsigned; one with them requires a signature on the
// critical ones (required) and checks any signature given. A signature is
// judged fresh by the vault's clock alone: a time an item's message claims
// could be forged by any client, and would let a captured signature be
// replayed once its nonce is forgotten.
func (v *vault) authenticate(ctx workflow.Context, op, workflowID string, input []byte, by string, required bool) (string, error) {
	if v.st.AllowedSigners == "" {
		return signing.Unsigned, nil
	}
	var sig signing.Signature
	_ = json.Unmarshal(input, &sig)
	if !required && sig.Signature == "" {
		return signing.Unsigned, nil
	}
	signers, err := signing.ParseAllowedSigners(v.st.AllowedSigners)
	if err != nil {
		return "", err
	}
	now := workflow.Now(ctx)
	v.st.Nonces = signing.FreshNonces(v.st.Nonces, now)
	s, n, err := signing.VerifySignature(signers, op, workflowID, input, by, signing.WithinSkew(now), v.st.Nonces)
	if err != nil {
		return "", fmt.Errorf("%s as %s refused: %w; nothing changed", op, by, err)
	}
	v.st.Nonces = append(v.st.Nonces, n)
	return s.String(), nil
}

// forgetNonce forgets the nonce of a signed request that took no effect
// (a delete the mass-delete guard holds), so that it may be sent again
// while it is fresh.
func (v *vault) forgetNonce(input []byte) {
	var sig signing.Signature
	if json.Unmarshal(input, &sig) != nil || sig.Nonce == "" {
		return
	}
	v.st.Nonces = slices.DeleteFunc(v.st.Nonces, func(n signing.SeenNonce) bool { return n.Nonce == sig.Nonce })
}

// sharedApproverKeys names a key listed for more than one approver: its
// holder could request as one and approve as another.
func sharedApproverKeys(signers []signing.AllowedSigner, approvers []string) error {
	for _, s := range signers {
		var names []string
		for _, a := range approvers {
			// The same key may be on several lines.
			if slices.ContainsFunc(signers, func(o signing.AllowedSigner) bool { return o.Fingerprint == s.Fingerprint && o.ListedFor(a) }) {
				names = append(names, a)
			}
		}
		if len(names) > 1 {
			return &protocol.Refusal{Message: fmt.Sprintf("key %s is listed for approvers %s: each approver needs a key of their own, or one person could request and approve",
				s.Fingerprint, strings.Join(names, " and "))}
		}
	}
	return nil
}
