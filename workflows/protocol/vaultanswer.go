package protocol

import (
	"encoding/json"
	"fmt"
	"time"

	"recoveryvault/internal/signing"
)

// Retries of an event waiting for the vault back off to a minute, or to
// MaxHeldDeleteRetry while the vault holds deletes.
const (
	FirstDeleteRetry   = 5 * time.Second
	MaxDeleteRetry     = time.Minute
	MaxHeldDeleteRetry = 2 * time.Minute
)

// RequestState is where a request stands.
type RequestState string

const (
	RequestPending  RequestState = "PendingApproval"
	RequestApproved RequestState = "Approved"
	RequestRejected RequestState = "Rejected"
	RequestExpired  RequestState = "Expired"
	// RequestFailed is approved but refused when carried out, say a vault
	// that gained items while its deletion waited.
	RequestFailed RequestState = "Failed"
)

// MuaRequest is a critical operation waiting for, or decided by, approval.
type MuaRequest struct {
	RequestID string `json:"requestId"`
	Operation string `json:"operation"`
	ItemID    string `json:"itemId,omitempty"`
	// Points are the suspect points a clearAnomaly accepts: those known
	// when it was asked, and no later one.
	Points      []string `json:"points,omitempty"`
	Summary     string   `json:"summary"`
	RequestedBy string   `json:"requestedBy"`
	// Signer is the key that signed the request, or "unsigned".
	Signer    string       `json:"signer,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	State     RequestState `json:"state"`
	CreatedAt time.Time    `json:"createdAt"`
	ExpiresAt time.Time    `json:"expiresAt"`
	DecidedBy string       `json:"decidedBy,omitempty"`
	// DecisionSigner is the key that signed the decision, or "unsigned".
	DecisionSigner string    `json:"decisionSigner,omitempty"`
	DecidedAt      time.Time `json:"decidedAt,omitzero"`
	// CarriedOut is set once the item has carried out an approved delete:
	// the same approval counts once.
	CarriedOut bool `json:"carriedOut,omitempty"`
	// Detail says, in words, what happened or what must happen next.
	Detail string `json:"detail"`
	// What is carried out on approval.
	SoftDelete     *SetSoftDeleteRequest      `json:"softDelete,omitempty"`
	Mua            *EnableMuaRequest          `json:"mua,omitempty"`
	AllowedSigners *SetAllowedSignersRequest  `json:"allowedSigners,omitempty"`
	Guard          *SetMassDeleteGuardRequest `json:"massDeleteGuard,omitempty"`
}

// DecisionRequest is the payload of approve and reject.
type DecisionRequest struct {
	RequestID   string `json:"requestId"`
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	signing.Signature
}

// DeleteApproval is the deleteApproved signal.
type DeleteApproval struct {
	RequestID string `json:"requestId"`
	// Approval is the approve update as its approver sent it to the
	// vault, signature included.
	Approval json.RawMessage `json:"approval,omitempty"`
}

// Hold is a vault's mass-delete hold, judged by the same rule (Holds) at
// the vault and at its items.
type Hold struct {
	HeldSince     time.Time `json:"heldSince,omitzero"`
	ReleasedUntil time.Time `json:"releasedUntil,omitzero"`
}

// Released is true for a delete received before the hold was last cleared:
// the clear let it through, uncounted.
func (h Hold) Released(receivedAt time.Time) bool {
	return !receivedAt.IsZero() && !receivedAt.After(h.ReleasedUntil)
}

// Holds is true when a delete received at receivedAt waits for the hold
// to be cleared.
func (h Hold) Holds(receivedAt time.Time) bool {
	return !h.HeldSince.IsZero() && !h.Released(receivedAt)
}

// DeleteSettings are what an item reads from its vault at a delete.
type DeleteSettings struct {
	SoftDeleteSettings
	// MultiUserAuthorization, when true, makes the delete wait for approval.
	MultiUserAuthorization bool `json:"multiUserAuthorization,omitempty"`
	// MassDeleteHold is the vault's mass-delete hold.
	MassDeleteHold Hold `json:"massDeleteHold"`
	// Signers is the digest of the vault's allowed signers, "" for none.
	Signers string `json:"signers,omitempty"`
	// Run is the run that wrote the memo: a memo is believed only from the
	// run that runs now.
	Run string `json:"run,omitempty"`
	// Incarnation is the vault's first run's ID, from the server's record
	// rather than the memo.
	Incarnation string `json:"-"`
}

// Protection is what the vault requires of a delete now.
func (s DeleteSettings) Protection() Protection {
	return Protection{Mua: s.MultiUserAuthorization, Signers: s.Signers, Incarnation: s.Incarnation}
}

// StillHeld says why a delete the vault held is held still, read from its
// memo without a task of the vault; "" means ask the vault again.
func (s DeleteSettings) StillHeld(vaultID string, req ItemDeleteRequest, now time.Time) string {
	if s.MultiUserAuthorization || req.RequestID != "" || req.Op() != string(OpDelete) || !s.MassDeleteHold.Holds(req.ReceivedAt) {
		return ""
	}
	// A signed delete whose signature has gone stale is the vault's to
	// refuse, now, rather than shown waiting for a clear it cannot pass.
	var sig signing.Signature
	_ = json.Unmarshal(req.Input, &sig)
	if at, err := time.Parse(time.RFC3339, sig.SignedAt); sig.Signature != "" && (err != nil || signing.WithinSkew(now)(at) != nil) {
		return ""
	}
	return fmt.Sprintf("vault %s holds deletes since %s: its mass-delete guard let its threshold through; the delete waits until the hold is cleared (clearMassDeleteHold)",
		vaultID, FormatTime(s.MassDeleteHold.HeldSince))
}

// ItemDeleteRequest is the payload of itemDelete.
type ItemDeleteRequest struct {
	// Operation is delete when empty, or clearAnomaly: both are critical.
	// Points are the suspect points a clearAnomaly accepts.
	Operation   string   `json:"operation,omitempty"`
	Points      []string `json:"points,omitempty"`
	ItemID      string   `json:"itemId"`
	Incarnation string   `json:"incarnation,omitempty"`
	RequestedBy string   `json:"requestedBy,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	// RequestID is an approved request the item carries out.
	RequestID string `json:"requestId,omitempty"`
	// Input is the delete's payload as the person sent it, signature
	// included: a vault that requires signatures checks it.
	Input json.RawMessage `json:"input,omitempty"`
	// At is the item's time of the delete; the deadline counts from it.
	At time.Time `json:"at"`
	// ReceivedAt is when the item received the delete (Hold.Released).
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	// Window is the item's part in the window.
	Window WindowInputs `json:"window"`
}

// Op is the operation asked: delete, or clearAnomaly.
func (r ItemDeleteRequest) Op() string {
	if r.Operation == "" {
		return string(OpDelete)
	}
	return r.Operation
}

// ItemOperation is true for the critical operations an item asks its
// vault about.
func ItemOperation(op string) bool {
	return op == string(OpDelete) || op == string(OpClearAnomaly)
}

// VaultAnswer is the vault's answer to an item's delete: the window it
// gets, or the request it waits on, or why it cannot be made.
type VaultAnswer struct {
	// Refusal says why nothing can be deleted now; nothing changed.
	Refusal        string `json:"refusal,omitempty"`
	RefusalDetails `json:"refusalDetails"`
	// Unavailable says why the vault could not answer (busy, restarting,
	// not created yet): the delete waits and is asked again.
	Unavailable string `json:"unavailable,omitempty"`
	// Held says why the vault holds the delete (its mass-delete guard):
	// the delete waits and is asked again.
	Held string `json:"held,omitempty"`
	// Settings are the vault's soft-delete settings now.
	Settings SoftDeleteSettings `json:"settings"`
	// Window is the delete's soft-delete window; Disabled says the vault
	// purges at once.
	Window   time.Duration `json:"window"`
	Disabled bool          `json:"disabled,omitempty"`
	// Pending is the request that must be approved first.
	Pending *MuaRequest `json:"pending,omitempty"`
	// RequestedBy and Reason are an approved request's, for the item's
	// audit; Points, for an approved clearAnomaly, what it accepts.
	RequestedBy string   `json:"requestedBy,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Points      []string `json:"points,omitempty"`
	// Signer is who signed the delete, or Unsigned.
	Signer string `json:"signer,omitempty"`
	// Approvers and ApproverKeys come with Pending: who may approve, and
	// their keys, with which the item checks a signed approval itself.
	Approvers    []string `json:"approvers,omitempty"`
	ApproverKeys string   `json:"approverKeys,omitempty"`
	// Alert is for the asking activity to deliver.
	Alert *Alert `json:"alert,omitempty"`
}
