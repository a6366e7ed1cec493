package item

import (
	"fmt"
	"slices"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// approved is a delete approved at the vault. The item acts only on a delete
// it registered, once, and has the vault confirm the approval.
func (d *decider) approved() (Decision, error) {
	id := d.ev.RequestID
	i := d.awaiting(id)
	refuseApproval := func(format string, args ...any) (Decision, error) {
		if w := d.st.waiting(protocol.OpApproved, id); d.ev.Retry && w >= 0 {
			d.st.Waiting = slices.Delete(slices.Clone(d.st.Waiting), w, w+1)
		}
		return d.vaultRefused(fmt.Sprintf(format, args...), protocol.RefusalDetails{})
	}
	switch {
	case id == "":
		return d.refuse(`no requestId, nothing changed: send {"requestId": "r-1"}`)
	case i < 0 && d.ev.Retry:
		// Awaited no more (carried out, or dropped past the bound): the
		// approval waits no longer either.
		return refuseApproval("item %s awaits no approval of request %q any more, nothing changed", d.item, protocol.Quote([]byte(id)))
	case i < 0:
		return d.refuse("item %s awaits no approval of request %q, nothing changed: it acts only on deletes it registered itself, once",
			d.item, protocol.Quote([]byte(id)))
	case d.st.ProtectionState != protocol.Protected && d.st.ProtectionState != protocol.ProtectionStopped:
		return refuseApproval("item %s is %s: request %s has nothing to delete", d.item, protocol.VisibleState(d.st.ProtectionState), id)
	}
	// Checked once, before the vault is asked; deciding again with its
	// answer is for the same state and event.
	a := d.st.AwaitingApproval[i]
	if a.ApproverKeys != "" && d.in.Vault == nil {
		if _, err := checkApproval(a, d.in.Item.VaultID, d.ev.Input); err != nil {
			return refuseApproval("item %s: %v; nothing changed", d.item, err)
		}
	}
	if an := protocol.Anomaly(d.st.RecoveryPoints); an != nil && a.Op != protocol.OpClearAnomaly {
		return d.wait(d.heldByAnomaly(an), untilAnomalyCleared), nil
	}
	v, without, err := d.vaultAnswer()
	if v == nil {
		return without, err
	}
	d.ev.Reason = v.Reason
	if a.Op == protocol.OpClearAnomaly {
		d.st.AwaitingApproval = slices.Delete(slices.Clone(d.st.AwaitingApproval), i, i+1)
		d.st.ApprovalsUsed = keepLast(append(slices.Clone(d.st.ApprovalsUsed), id), maxAwaitingApproval)
		d.clear(v.RequestedBy, v.Signer, v.Points)
		return d.decision(), nil
	}
	// Every delete this item waited for is done by this one, asked by its
	// requester and approved by another.
	for _, a := range d.st.AwaitingApproval {
		d.st.ApprovalsUsed = keepLast(append(slices.Clone(d.st.ApprovalsUsed), a.RequestID), maxAwaitingApproval)
	}
	d.st.AwaitingApproval = nil
	return d.softDelete(v, v.RequestedBy), nil
}

// awaiting is the index of request id among the approvals awaited, or -1.
func (d *decider) awaiting(id string) int {
	return slices.IndexFunc(d.st.AwaitingApproval, func(a AwaitedApproval) bool { return a.RequestID == id })
}

// checkApproval checks a signed approval at the item: a listed approver's
// key, not the requester's, signed before the request expired.
func checkApproval(a AwaitedApproval, vaultID string, approval []byte) (signing.Signer, error) {
	var req protocol.DecisionRequest
	if err := protocol.DecodeJSON(approval, &req); err != nil {
		return signing.Signer{}, fmt.Errorf("the approval of request %s cannot be read: %v", a.RequestID, err)
	}
	signers, err := signing.ParseAllowedSigners(a.ApproverKeys)
	if err != nil {
		return signing.Signer{}, err
	}
	switch {
	case req.RequestID != a.RequestID:
		return signing.Signer{}, fmt.Errorf("the approval is of request %q, not %s", req.RequestID, a.RequestID)
	case signing.SameIdentity(req.RequestedBy, a.RequestedBy):
		return signing.Signer{}, fmt.Errorf("%s requested %s and cannot approve it", req.RequestedBy, a.RequestID)
	case !slices.ContainsFunc(a.Approvers, func(n string) bool { return signing.SameIdentity(n, req.RequestedBy) }):
		return signing.Signer{}, fmt.Errorf("%s is not an approver of vault %s", req.RequestedBy, vaultID)
	}
	// An approval is for the request's window; the vault checked its
	// freshness when it took it, and confirms it once.
	beforeExpiry := func(at time.Time) error {
		if !at.Before(a.ExpiresAt) {
			return fmt.Errorf("it was signed at %s, after request %s expired at %s: ask again", protocol.FormatTime(at), a.RequestID, protocol.FormatTime(a.ExpiresAt))
		}
		return nil
	}
	s, _, err := signing.VerifySignature(signers, protocol.UpdateApprove, protocol.VaultWorkflowID(vaultID), approval, req.RequestedBy, beforeExpiry, nil)
	if err != nil {
		return signing.Signer{}, fmt.Errorf("the approval of request %s by %s: %w", a.RequestID, req.RequestedBy, err)
	}
	if s.Fingerprint == signing.FingerprintOf(a.Signer) {
		return signing.Signer{}, fmt.Errorf("the approval of request %s is signed with the key that signed the request (%s): a second person must approve", a.RequestID, s.Fingerprint)
	}
	return s, nil
}
