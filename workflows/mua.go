package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Multi-user authorization names a user types (docs/contract.md section 2).
const (
	UpdateEnableMua = "enableMua"
	UpdateApprove   = "approve"
	UpdateReject    = "reject"
	// SignalDeleteApproved tells an item that its delete was approved. The
	// item believes it only after its vault confirms the approval.
	SignalDeleteApproved = "deleteApproved"
)

// Bounds of multi-user authorization.
const (
	DefaultApprovalWindow = 24 * time.Hour
	MinApprovalWindow     = time.Minute
	MaxApprovalWindow     = 30 * 24 * time.Hour
	maxApprovers          = 20
	// maxPendingRequests bounds what a flood of requests can make a vault
	// carry; maxClosedRequests how many decided ones it keeps to show.
	maxPendingRequests = 100
	// maxPendingPerRequester keeps one requester from filling the queue.
	maxPendingPerRequester = 10
	maxClosedRequests      = 50
)

// MuaSettings are a vault's multi-user authorization: while enabled, a
// critical operation waits for one of Approvers other than its requester.
type MuaSettings struct {
	Enabled   bool     `json:"enabled"`
	Approvers []string `json:"approvers,omitempty"`
	// ApprovalWindow is a duration ("24h"): how long a request may wait.
	ApprovalWindow string `json:"approvalWindow,omitempty"`
}

func (m MuaSettings) window() time.Duration {
	if d, err := time.ParseDuration(m.ApprovalWindow); err == nil && d > 0 {
		return d
	}
	return DefaultApprovalWindow
}

func (m MuaSettings) String() string {
	if !m.Enabled {
		return "multi-user authorization off"
	}
	return fmt.Sprintf("multi-user authorization on: approvers %s, requests expire after %s",
		strings.Join(m.Approvers, ", "), m.ApprovalWindow)
}

// EnableMuaRequest is the payload of enableMua. "enabled": false turns
// multi-user authorization off, which is itself a critical operation.
type EnableMuaRequest struct {
	Enabled        *bool    `json:"enabled,omitempty"`
	Approvers      []string `json:"approvers,omitempty"`
	ApprovalWindow string   `json:"approvalWindow,omitempty"`
	RequestedBy    string   `json:"requestedBy,omitempty"`
	Reason         string   `json:"reason,omitempty"`
	Signature
}

// ChangeMua applies an enableMua request to the current settings, or
// refuses it in a sentence.
func ChangeMua(vaultID string, cur MuaSettings, req EnableMuaRequest) (MuaSettings, error) {
	if req.Enabled != nil && !*req.Enabled {
		if !cur.Enabled {
			return cur, &Refusal{Message: fmt.Sprintf("multi-user authorization of vault %s is already off", vaultID)}
		}
		if len(req.Approvers) > 0 || req.ApprovalWindow != "" {
			return cur, &Refusal{Message: `"enabled": false turns multi-user authorization off: send it without approvers or approvalWindow`}
		}
		return MuaSettings{}, nil
	}
	next := MuaSettings{Enabled: true, Approvers: cur.Approvers, ApprovalWindow: cur.ApprovalWindow}
	if len(req.Approvers) > 0 {
		approvers, err := approverList(req.Approvers)
		if err != nil {
			return cur, err
		}
		next.Approvers = approvers
	}
	if len(next.Approvers) == 0 {
		return cur, &Refusal{Message: `multi-user authorization needs approvers: send {"approvers": ["alice", "bob"], "approvalWindow": "24h"}`}
	}
	if req.ApprovalWindow != "" {
		d, err := time.ParseDuration(req.ApprovalWindow)
		if err != nil || d < MinApprovalWindow || d > MaxApprovalWindow {
			return cur, &Refusal{Message: fmt.Sprintf("approvalWindow %q is not a duration from %s to %s, such as \"24h\"",
				req.ApprovalWindow, MinApprovalWindow, FormatRemaining(MaxApprovalWindow))}
		}
		next.ApprovalWindow = d.String()
	}
	if next.ApprovalWindow == "" {
		next.ApprovalWindow = DefaultApprovalWindow.String()
	}
	return next, nil
}

func approverList(names []string) ([]string, error) {
	if len(names) > maxApprovers {
		return nil, &Refusal{Message: fmt.Sprintf("%d approvers are too many: name at most %d", len(names), maxApprovers)}
	}
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if reservedName(n) || len(n) > 256 {
			return nil, &Refusal{Message: fmt.Sprintf("approver %q is not a name: use the identity each approver signs requests with", n)}
		}
		if slices.ContainsFunc(out, func(o string) bool { return sameIdentity(o, n) }) {
			return nil, &Refusal{Message: fmt.Sprintf("approver %q is named twice", n)}
		}
		out = append(out, n)
	}
	return out, nil
}

// sameIdentity compares identities as people type them: "Alice " is alice.
func sameIdentity(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// SameIdentity compares identities as the workflows do, for clients that
// must agree with them (the starter choosing a signing key).
func SameIdentity(a, b string) bool { return sameIdentity(a, b) }

// ReservedName says whether n is a name no person signs with: the
// workflow's own (system, scheduler) or anonymous.
func ReservedName(n string) bool { return reservedName(n) }

// reservedName is a name no person signs with: the workflow's own.
func reservedName(n string) bool {
	n = strings.TrimSpace(n)
	return n == "" || sameIdentity(n, anonymous) || sameIdentity(n, system) || sameIdentity(n, scheduler)
}

// otherApprovers are the approvers who may approve what by asks.
func (m MuaSettings) otherApprovers(by string) []string {
	var others []string
	for _, a := range m.Approvers {
		if !sameIdentity(a, by) {
			others = append(others, a)
		}
	}
	return others
}

// CheckRequester refuses a critical request that no one else could
// approve: one that does not say who asks, or whose requester is the only
// approver.
func CheckRequester(vaultID string, m MuaSettings, by string) error {
	if reservedName(by) {
		return &Refusal{Message: fmt.Sprintf(
			"multi-user authorization of vault %s is on: name yourself in requestedBy, so that someone else can approve", vaultID)}
	}
	if len(m.otherApprovers(by)) == 0 {
		return &Refusal{Message: fmt.Sprintf(
			"%s is the only approver of vault %s, and no one may approve their own request: another person must ask, or add approvers", by, vaultID)}
	}
	return nil
}

// CriticalSoftDeleteChange is true for a change that weakens soft delete:
// turning it off or shortening the retention.
func CriticalSoftDeleteChange(cur, next SoftDeleteSettings) bool {
	return (next.State == SoftDeleteDisabled && cur.State != SoftDeleteDisabled) || next.RetentionDays < cur.RetentionDays
}

// CriticalMuaChange is true for turning multi-user authorization off or
// changing who approves while it is on: either could let one person act
// alone. Turning it on is not critical.
func CriticalMuaChange(cur, next MuaSettings) bool {
	return cur.Enabled && (!next.Enabled || !slices.Equal(cur.Approvers, next.Approvers) || cur.ApprovalWindow != next.ApprovalWindow)
}

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
	RequestID   string `json:"requestId"`
	Operation   string `json:"operation"`
	ItemID      string `json:"itemId,omitempty"`
	Summary     string `json:"summary"`
	RequestedBy string `json:"requestedBy"`
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

// actor is who asked for the request.
func (r MuaRequest) actor() actor { return actor{by: r.RequestedBy, signer: r.Signer} }

// DecisionRequest is the payload of approve and reject.
type DecisionRequest struct {
	RequestID   string `json:"requestId"`
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Signature
}

// DeleteApproval is the deleteApproved signal.
type DeleteApproval struct {
	RequestID string `json:"requestId"`
	// Approval is the approve update as its approver sent it to the
	// vault, signature included.
	Approval json.RawMessage `json:"approval,omitempty"`
}

// pendingDetail tells the requester who may approve and until when.
func pendingDetail(m MuaSettings, by string, expires time.Time) string {
	return fmt.Sprintf("pending approval by %s until %s; nothing changes unless approved by then",
		strings.Join(m.otherApprovers(by), " or "), expires.UTC().Format(time.RFC3339))
}

// CheckDecision says whether by may approve (or, with approve false,
// reject) request r now, or why not. A requester may withdraw a request
// but never approve it.
func CheckDecision(vaultID string, m MuaSettings, r MuaRequest, by string, approve bool, now time.Time) error {
	verb := "approve"
	if !approve {
		verb = "reject"
	}
	switch {
	case r.State != RequestPending:
		return &Refusal{Message: fmt.Sprintf("request %s is %s, not pending: nothing to %s", r.RequestID, r.State, verb)}
	case !now.Before(r.ExpiresAt):
		return &Refusal{Message: fmt.Sprintf("request %s expired at %s: send the operation again", r.RequestID, r.ExpiresAt.UTC().Format(time.RFC3339))}
	case reservedName(by):
		return &Refusal{Message: fmt.Sprintf("to %s request %s, name yourself in requestedBy", verb, r.RequestID)}
	case approve && sameIdentity(by, r.RequestedBy):
		return &Refusal{Message: fmt.Sprintf("%s requested %s and cannot approve it: another approver of vault %s must", by, r.RequestID, vaultID)}
	case len(m.otherApprovers(by)) == len(m.Approvers) && (approve || !sameIdentity(by, r.RequestedBy)):
		return &Refusal{Message: fmt.Sprintf("%s is not an approver of vault %s: its approvers are %s", by, vaultID, strings.Join(m.Approvers, ", "))}
	}
	return nil
}
