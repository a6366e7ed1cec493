package vault

import (
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// VaultInput starts a Vault. State is set only by continue-as-new.
type VaultInput struct {
	VaultID string      `json:"vaultId"`
	State   *VaultState `json:"state,omitempty"`
}

// VaultState is everything a vault carries across continue-as-new.
type VaultState struct {
	SoftDelete protocol.SoftDeleteSettings `json:"softDelete"`
	// Items is the last count of items holding data: the vault keeps no list.
	Items  ItemCount             `json:"items"`
	Audit  []protocol.AuditEntry `json:"audit"`
	Outbox []protocol.Alert      `json:"outbox,omitempty"`
	Mua    MuaSettings           `json:"mua"`
	// Requests are the critical operations pending approval and the last
	// ones decided; RequestSequence numbers them.
	Requests        []protocol.MuaRequest `json:"requests,omitempty"`
	RequestSequence int                   `json:"requestSequence,omitempty"`
	// AllowedSigners are the operators' keys (allowed_signers); Nonces are
	// the signed requests seen within the skew.
	AllowedSigners string              `json:"allowedSigners,omitempty"`
	Nonces         []signing.SeenNonce `json:"nonces,omitempty"`
	// Guard is the mass-delete guard's setting, MassDelete what it saw.
	Guard      MassDeleteGuard `json:"massDeleteGuard"`
	MassDelete MassDeleteState `json:"massDelete"`
	// Deleted is set by an accepted deleteVault: the run then ends.
	Deleted bool `json:"deleted,omitempty"`
	// ID is the vault's, from its input.
	ID string `json:"-"`
}

// ItemCount is how many of a vault's items hold data (every state but
// Purged), as visibility counted them at At; zero At is never counted.
type ItemCount struct {
	HoldingData int       `json:"holdingData"`
	At          time.Time `json:"at,omitzero"`
	// Tried is when a count last failed.
	Tried time.Time `json:"-"`
}

// VaultStatus answers the vault's status query and its updates.
type VaultStatus struct {
	VaultID                     string                      `json:"vaultId"`
	SoftDelete                  protocol.SoftDeleteSettings `json:"softDelete"`
	SoftDeleteRetentionOverride string                      `json:"softDeleteRetentionOverride,omitempty"`
	// Items is the last count of items holding data, for the guard.
	Items                  ItemCount             `json:"items"`
	MultiUserAuthorization MuaSettings           `json:"multiUserAuthorization"`
	Requests               []protocol.MuaRequest `json:"requests"`
	// SignaturesRequired is true while the vault holds allowed signers,
	// listed in AllowedSigners.
	SignaturesRequired bool                `json:"signaturesRequired"`
	AllowedSigners     []signing.SignerKey `json:"allowedSigners"`
	// MassDeleteGuard is the guard's setting and what it is now: its
	// threshold for the vault's items, and since when it holds deletes.
	MassDeleteGuard MassDeleteGuardStatus `json:"massDeleteGuard"`
	// Request is the request an update opened or decided, in its answer.
	Request *protocol.MuaRequest  `json:"request,omitempty"`
	Deleted bool                  `json:"deleted"`
	Audit   []protocol.AuditEntry `json:"audit"`
}
