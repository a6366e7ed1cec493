package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"
)

// UpdateSetAllowedSigners sets, replaces or removes a vault's allowed
// signers (docs/contract.md section 4).
const UpdateSetAllowedSigners = "setAllowedSigners"

// SetAllowedSignersRequest is the payload of setAllowedSigners: the text of
// an allowed_signers file, empty to remove them.
type SetAllowedSignersRequest struct {
	AllowedSigners string `json:"allowedSigners"`
	RequestedBy    string `json:"requestedBy,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Signature
}

const setAllowedSignersExample = `{"allowedSigners": "alice@example.com ssh-ed25519 AAAA...\nbob@example.com ssh-ed25519 AAAA...", "requestedBy": "alice@example.com"}`

// setAllowedSigners makes a vault require signatures, or changes whose. The
// first signers follow the vault's rules for critical operations (under
// multi-user authorization they wait for approval); replacing or removing
// them is critical and must be signed with a key listed now.
func (v *vault) setAllowedSigners(ctx workflow.Context, req SetAllowedSignersRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: requester(req.RequestedBy)}
	signers, err := parseAllowedSigners(req.AllowedSigners)
	switch {
	case err != nil:
		err = &Refusal{Message: err.Error() + ": nothing changed"}
	case len(signers) == 0 && v.st.AllowedSigners == "":
		err = &Refusal{Message: fmt.Sprintf("vault %s holds no allowed signers, and none were given: send the text of an allowed_signers file", v.id)}
	case len(signers) > 0 && v.st.Mua.Enabled:
		err = v.keysOfApprovers(req.AllowedSigners, v.st.Mua.Approvers)
	}
	if err != nil {
		v.refuse(ctx, UpdateSetAllowedSigners, who, err)
		return VaultStatus{}, refused(err)
	}
	if len(signers) == 0 {
		req.AllowedSigners = ""
	}
	if who, err = v.signedBy(ctx, UpdateSetAllowedSigners, input, who, v.st.AllowedSigners != ""); err != nil {
		return VaultStatus{}, err
	}
	if v.st.Mua.Enabled {
		summary := "remove the allowed signers: critical operations would no longer be signed"
		if len(signers) > 0 {
			summary = "set the allowed signers to " + signerSummary(signers)
		}
		req.Signature = Signature{}
		return v.openRequest(ctx, MuaRequest{Operation: UpdateSetAllowedSigners, RequestedBy: who.by, Signer: who.signer,
			Reason: req.Reason, AllowedSigners: &req, Summary: summary})
	}
	v.changeSigners(ctx, who, req.AllowedSigners, req.Reason)
	return v.status(), nil
}

func (v *vault) changeSigners(ctx workflow.Context, who actor, text, reason string) {
	detail := "allowed signers removed: critical operations are no longer signed"
	if signers, _ := parseAllowedSigners(text); len(signers) > 0 {
		detail = "allowed signers set to " + signerSummary(signers) + ": every critical operation must now be signed"
	}
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.AllowedSigners = strings.TrimSpace(text)
	v.audit(ctx, UpdateSetAllowedSigners, who, OutcomeAccepted, detail)
	v.version++
}

// signerSummary names every key: "alice@example.com (SHA256:...), ...".
func signerSummary(signers []allowedSigner) string {
	var parts []string
	for _, s := range signers {
		parts = append(parts, strings.Join(s.Principals, ",")+" ("+s.Fingerprint+")")
	}
	return Plural(len(signers), "key") + ": " + strings.Join(parts, ", ")
}
