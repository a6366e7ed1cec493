package workflows

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Trust: the checks the workflows make against forged messages. Anyone who
// can reach the namespace can start workflows and send any signal or
// update; these checks are what stands between such a client and an item's
// data. Each counters one threat:
//
//   - checkIdentity: a workflow started under another item's ID, or on a
//     cron schedule, acting on an item's store (data is kept by ID).
//   - checkCarriedState: a start input, a cron run or a retry that claims
//     the item is already soft-deleted, to have it purged at once.
//   - VaultFloor: a vault reset or weakened after an item saw its settings,
//     to shorten the item's window or turn soft delete off under it.
//   - realItem: forged itemDelete updates naming items that do not exist,
//     to fill the vault's bounded queue of requests for approval. A forged
//     delete without multi-user authorization is answered to its sender
//     only; it can count towards the mass-delete guard, which errs towards
//     holding deletes, never towards letting one through.
//   - approvedDelete: a forged deleteApproved signal, to skip multi-user
//     authorization. The item acts only on a delete it registered itself
//     and has not carried out (Decide's approved, in decide.go), and only
//     once its vault confirms the approval here.
//
// Limits: the namespace's workers are trusted. A worker that registers a
// workflow of its own and continues it as new into a BackupItem could hand
// it any state; no check inside the workflow can tell that run from ours.
//
// Settings are never taken from a message: an item's delete asks its vault
// (askVault), so no one can signal it into "soft delete disabled". The
// vault's memo, which a client could set when it starts the vault, only
// ever raises an item's floor, and each run of the vault writes its own.
// deleteVault counts items from their own workflows (ListVaultItems).

// errForgedState refuses a start input that carries state it may not.
var errForgedState = errors.New(`"state" is carried only by the workflow's own continue-as-new: start it without "state"`)

// checkIdentity refuses a run that is not the workflow it claims to be:
// the workflow ID must be the one its input names, and no cron schedule may
// re-run it. Data is purged by vault and item ID, so a workflow under
// another ID must never act on an item's store.
func checkIdentity(ctx workflow.Context, wantID string) error {
	info := workflow.GetInfo(ctx)
	if info.WorkflowExecution.ID != wantID {
		return fmt.Errorf("workflow ID %q does not match its input: start it with workflow ID %q", info.WorkflowExecution.ID, wantID)
	}
	if info.CronSchedule != "" {
		return errors.New("this workflow cannot run on a cron schedule: start it without --cron")
	}
	return nil
}

// checkCarriedState accepts carried state only in a run continued from
// another (only the server sets that, never a client's start), not in a
// retry of a run (cron runs are refused by checkIdentity), and only from a
// run of ours: anyone may terminate an item and continue a workflow of
// their own into it with any state, so the run continued must have been of
// this workflow's type on our task queue, its code this worker's. Checking
// the run just before, not the chain's first, holds after the first has
// passed the namespace's retention.
func checkCarriedState(ctx workflow.Context) error {
	info := workflow.GetInfo(ctx)
	if info.ContinuedExecutionRunID == "" || info.Attempt > 1 {
		return errForgedState
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Until the server answers: the state is neither used nor lost.
		RetryPolicy: &temporal.RetryPolicy{MaximumInterval: time.Minute, NonRetryableErrorTypes: []string{ErrTypeForbidden}},
	})
	var prev RunInfo
	if err := workflow.ExecuteActivity(actx, ActivityDescribeRun, info.WorkflowExecution.ID, info.ContinuedExecutionRunID).Get(ctx, &prev); err != nil {
		return fmt.Errorf("the run this one continues could not be checked: %s", message(err))
	}
	if !prev.ContinuedAsNew || prev.WorkflowType != info.WorkflowType.Name || prev.TaskQueue != TaskQueue {
		return fmt.Errorf("carried state refused: the run it continues (%s) is a %q on task queue %q, not a %s of ours on %q; nothing was done with it",
			info.ContinuedExecutionRunID, prev.WorkflowType, prev.TaskQueue, info.WorkflowType.Name, TaskQueue)
	}
	return nil
}

// validate checks the contents of carried state.
func (st *ItemState) validate() error {
	switch st.ProtectionState {
	case Protected, ProtectionStopped:
	case SoftDeleted:
		if st.DeletedAt.IsZero() || !st.Deadline.After(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline after its deletion time", st.ProtectionState)
		}
	case Purging:
		if st.DeletedAt.IsZero() || st.Deadline.Before(st.DeletedAt) {
			return fmt.Errorf("carried state is %s without a deadline", st.ProtectionState)
		}
	default:
		return fmt.Errorf("carried protectionState %q is not a state an item continues in", st.ProtectionState)
	}
	return nil
}

// VaultFloor is the strongest soft-delete setting an item has seen, and
// what its vault required of a delete (multi-user authorization, its
// allowed signers' digest) in the vault's incarnation Vault (its first
// run's ID). A vault terminated or reset and started anew is another
// incarnation: it cannot lower what the item saw before.
type VaultFloor struct {
	AlwaysOn      bool   `json:"alwaysOn,omitempty"`
	RetentionDays int    `json:"retentionDays,omitempty"`
	Mua           bool   `json:"mua,omitempty"`
	Signers       string `json:"signers,omitempty"`
	Vault         string `json:"vault,omitempty"`
}

// Protection is what a vault requires of a delete now, in which
// incarnation.
type Protection struct {
	Mua         bool   `json:"mua,omitempty"`
	Signers     string `json:"signers,omitempty"`
	Incarnation string `json:"incarnation"`
}

// see takes what the vault requires now: within the incarnation the item
// knows, the vault's own rules govern its changes; a new incarnation is
// taken only once it requires at least what the item saw.
func (f *VaultFloor) see(p Protection) {
	if f.Vault == "" || f.Vault == p.Incarnation || f.Weakened("", p) == "" {
		f.Mua, f.Signers, f.Vault = p.Mua, p.Signers, p.Incarnation
	}
}

// Weakened says why vault vaultID, started anew since the item saw it,
// requires less of a delete than it did; "" when it does not.
func (f VaultFloor) Weakened(vaultID string, p Protection) string {
	if f.Vault == "" || p.Incarnation == "" || f.Vault == p.Incarnation {
		return ""
	}
	var lost []string
	if f.Mua && !p.Mua {
		lost = append(lost, "multi-user authorization")
	}
	if f.Signers != "" && p.Signers != f.Signers {
		lost = append(lost, "the allowed signers it held")
	}
	if len(lost) == 0 {
		return ""
	}
	return fmt.Sprintf("vault %s was started anew (terminated or reset) and no longer requires %s: the delete waits until the vault requires it again",
		vaultID, strings.Join(lost, " or "))
}

// SignersDigest names a set of allowed signers, whatever their order and
// comments: what an item remembers of them.
func SignersDigest(text string) string {
	signers, err := parseAllowedSigners(text)
	if err != nil || len(signers) == 0 {
		return ""
	}
	lines := make([]string, len(signers))
	for i, s := range signers {
		lines[i] = strings.Join(s.Principals, ",") + " " + s.Fingerprint
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:12])
}

// raise lifts the floor to what settings s demand.
func (f *VaultFloor) raise(s SoftDeleteSettings) {
	f.AlwaysOn = f.AlwaysOn || s.State == SoftDeleteAlwaysOn
	f.RetentionDays = max(f.RetentionDays, s.RetentionDays)
}

// apply never lets settings fall below the floor.
func (f VaultFloor) apply(s SoftDeleteSettings) SoftDeleteSettings {
	if f.AlwaysOn {
		s.State = SoftDeleteAlwaysOn
	}
	s.RetentionDays = max(s.RetentionDays, f.RetentionDays)
	return s
}

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
	var run RunInfo
	if err := workflow.ExecuteActivity(actx, ActivityDescribeRun, WorkflowID(v.id, itemID), "").Get(ctx, &run); err != nil {
		return false, err
	}
	return run.Running && run.WorkflowType == WorkflowType && run.FirstRunID == incarnation, nil
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
	var info RunInfo
	if err := workflow.ExecuteActivity(actx, ActivityDescribeRun, WorkflowID(v.id, itemID), "").Get(ctx, &info); err != nil {
		return "", err
	}
	if !info.Running || info.WorkflowType != WorkflowType || info.RunID != run || !slices.Contains(info.Asking, act) {
		return fmt.Sprintf("the delete of item %s did not come from the item (update %q): a delete reaches its vault from its item only; nothing changed",
			itemID, Clip(id, MaxNameBytes)), nil
	}
	return "", nil
}

// approvedDelete confirms, for an item carrying out a delete that waited
// for approval, that request id is an approved delete of that item, not
// carried out yet and within its window; it is then marked carried out, so
// the same approval counts once.
func (v *vault) approvedDelete(ctx workflow.Context, itemID, id string) (MuaRequest, error) {
	i := slices.IndexFunc(v.st.Requests, func(r MuaRequest) bool { return r.RequestID == id })
	if i < 0 {
		return MuaRequest{}, fmt.Errorf("vault %s holds no request %s, nothing changed", v.id, id)
	}
	r := &v.st.Requests[i]
	switch now := workflow.Now(ctx); {
	case r.Operation != string(OpDelete) || r.ItemID != itemID:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s is not a delete of item %s, nothing changed", id, v.id, itemID)
	case r.State != RequestApproved:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s is %s, not Approved: nothing changed", id, v.id, r.State)
	case r.CarriedOut:
		return MuaRequest{}, fmt.Errorf("request %s at vault %s has been carried out already: nothing changed", id, v.id)
	case !now.Before(r.ExpiresAt):
		// An approval is for then: one not carried out within the request's
		// window, say for an item that could not be told, must be asked again.
		return MuaRequest{}, fmt.Errorf("request %s was approved but its window ended at %s: nothing changed, ask again",
			id, rfc3339(r.ExpiresAt))
	}
	// Judged by the keys listed now: a key removed since the approval no
	// longer approves.
	if fp := fingerprintOf(r.DecisionSigner); fp != "" {
		signers, _ := parseAllowedSigners(v.st.AllowedSigners)
		if !listedKey(signers, fp, r.DecidedBy) {
			return MuaRequest{}, fmt.Errorf("request %s was approved with key %s, which vault %s no longer lists for %s: nothing changed, ask again",
				id, fp, v.id, r.DecidedBy)
		}
	}
	r.CarriedOut = true
	return *r, nil
}

// Signed operations. A vault that holds allowed signers accepts a critical
// operation only with an SSH signature, by a key listed for the person the
// request names, over the request itself. What is signed is the canonical
// message (CanonicalMessage): the operation, the workflow it is sent to
// and every field of its input but the signature, the nonce and the time
// among them. Threats countered:
//
//   - anyone who can reach the namespace sending a critical operation, or an
//     approval, in another person's name (verifySignature: the key must be
//     listed for requestedBy);
//   - a signature captured from one request used for another (the message
//     binds the operation, the workflow and every field);
//   - the same signed request sent again (its nonce is remembered while its
//     time is within SignatureMaxSkew, and refused outside it);
//   - a signature made for another purpose with the same key (the SSHSIG
//     namespace must be recoveryvault);
//   - an approval forged on its way to the item (checkApproval: the item
//     checks the approver's signature itself, against the keys its vault
//     held when the delete was requested, before it asks the vault anything);
//   - one person holding the keys of two approvers' names (the same key
//     may not sign a request and its approval, nor be listed for two
//     approvers).

// SignatureNamespace is the SSHSIG namespace of every signed request.
const SignatureNamespace = "recoveryvault"

// SignatureMaxSkew is how far a request's signedAt may be from the
// workflow's clock.
const SignatureMaxSkew = 10 * time.Minute

// Bounds of what a vault accepts as allowed signers and remembers of them.
const (
	maxAllowedSignersBytes = 16 << 10
	maxAllowedSigners      = 100
	// maxNonces bounds the signed requests a vault accepts within twice
	// the skew: only holders of listed keys can add to them.
	maxNonces = 1000
)

// Unsigned is the signer of an operation sent without a signature to a
// vault that does not require one, in the audit and the alerts.
const Unsigned = "unsigned"

// Signature are the fields a signed request adds to its input.
type Signature struct {
	// Signature is the armored SSHSIG ("-----BEGIN SSH SIGNATURE-----").
	Signature string `json:"signature,omitempty"`
	// Nonce is any string the signer has not used before, 8 to 128 characters.
	Nonce string `json:"nonce,omitempty"`
	// SignedAt is when it was signed, in RFC 3339.
	SignedAt string `json:"signedAt,omitempty"`
}

// SeenNonce is a signed request's nonce, remembered while its time is within
// the skew, so that the same request counts once.
type SeenNonce struct {
	Nonce    string    `json:"nonce"`
	SignedAt time.Time `json:"signedAt"`
}

// Signer is who signed a request, as the audit shows it.
type Signer struct {
	Principal   string `json:"principal"`
	Fingerprint string `json:"fingerprint"`
}

func (s Signer) String() string { return s.Principal + " (" + s.Fingerprint + ")" }

// SignerKey is one line of a vault's allowed signers, as its status shows it.
type SignerKey struct {
	Principals  []string `json:"principals"`
	KeyType     string   `json:"keyType"`
	Fingerprint string   `json:"fingerprint"`
	// Namespaces, when set, are the only namespaces the key may sign in.
	Namespaces []string `json:"namespaces,omitempty"`
}

// allowedSigner is one parsed line of an allowed_signers file.
type allowedSigner struct {
	SignerKey
	key  ssh.PublicKey
	line string
}

// ParseAllowedSigners reads OpenSSH's allowed_signers format, one key per
// line: "principals [options] keytype base64 [comment]", as git and
// ssh-keygen -Y verify use it. Of the options, namespaces= is honoured;
// certificate authorities, validity times and principal patterns are
// refused in a sentence rather than half understood.
func ParseAllowedSigners(text string) ([]SignerKey, error) {
	signers, err := parseAllowedSigners(text)
	keys := make([]SignerKey, len(signers))
	for i, s := range signers {
		keys[i] = s.SignerKey
	}
	return keys, err
}

func parseAllowedSigners(text string) ([]allowedSigner, error) {
	if len(text) > maxAllowedSignersBytes {
		return nil, fmt.Errorf("allowed signers of %d bytes are too many: at most %d", len(text), maxAllowedSignersBytes)
	}
	var out []allowedSigner
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSignerLine(line)
		if err != nil {
			return nil, fmt.Errorf("allowed signers line %d: %w", n+1, err)
		}
		out = append(out, s)
	}
	if len(out) > maxAllowedSigners {
		return nil, fmt.Errorf("%d allowed signers are too many: list at most %d keys", len(out), maxAllowedSigners)
	}
	return out, nil
}

func parseSignerLine(line string) (allowedSigner, error) {
	var principals, rest string
	if strings.HasPrefix(line, `"`) {
		end := strings.Index(line[1:], `"`)
		if end < 0 {
			return allowedSigner{}, errors.New("the quoted principals have no closing quote")
		}
		principals, rest = line[1:end+1], line[end+2:]
	} else {
		principals, rest, _ = strings.Cut(line, " ")
	}
	key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
	if err != nil {
		return allowedSigner{}, fmt.Errorf("no public key after the principals (%v): write \"alice@example.com ssh-ed25519 AAAA...\"", err)
	}
	s := allowedSigner{key: key, line: line, SignerKey: SignerKey{KeyType: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return allowedSigner{}, errors.New("certificates are not supported: list each operator's public key")
	}
	for _, p := range strings.Split(principals, ",") {
		p = strings.TrimSpace(p)
		switch {
		case strings.ContainsAny(p, "*?!"):
			return allowedSigner{}, fmt.Errorf("principal pattern %q is not supported: list each principal by name", p)
		case reservedName(p):
			return allowedSigner{}, fmt.Errorf("principal %q is not a person's name", p)
		}
		s.Principals = append(s.Principals, p)
	}
	for _, o := range options {
		name, value, _ := strings.Cut(o, "=")
		switch strings.ToLower(name) {
		case "namespaces":
			for _, ns := range strings.Split(strings.Trim(value, `"`), ",") {
				s.Namespaces = append(s.Namespaces, strings.TrimSpace(ns))
			}
		default:
			return allowedSigner{}, fmt.Errorf("option %q is not supported: only namespaces= is", name)
		}
	}
	return s, nil
}

// listedFor is true when the key is listed for principal by and may sign
// in SignatureNamespace.
func (s allowedSigner) listedFor(by string) bool {
	if len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, SignatureNamespace) {
		return false
	}
	return slices.ContainsFunc(s.Principals, func(p string) bool { return sameIdentity(p, by) })
}

// signersFor keeps the lines of the allowed signers that are listed for
// any of names: what an item needs to check an approval.
func signersFor(signers []allowedSigner, names []string) string {
	var lines []string
	for _, s := range signers {
		if slices.ContainsFunc(names, s.listedFor) {
			lines = append(lines, s.line)
		}
	}
	return strings.Join(lines, "\n")
}

// unlistedApprovers are the approvers with no key among signers: under
// signatures they could never approve.
func unlistedApprovers(signers []allowedSigner, approvers []string) []string {
	var out []string
	for _, a := range approvers {
		if !slices.ContainsFunc(signers, func(s allowedSigner) bool { return s.listedFor(a) }) {
			out = append(out, a)
		}
	}
	return out
}

// CanonicalMessage is what a signature signs for operation op sent to
// workflowID with JSON object input (nil for none): compact JSON, keys
// sorted, {"input": <input without "signature">, "operation": op,
// "workflowId": workflowID}. It is what jq -cSj prints for that object, so
// a person can sign by hand with jq and ssh-keygen -Y sign. To keep the
// two byte for byte equal, numbers must be whole and strings may hold no
// control characters but tab, newline and carriage return.
func CanonicalMessage(op, workflowID string, input []byte) ([]byte, error) {
	fields := map[string]any{}
	if trimmed := bytes.TrimSpace(input); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return nil, fmt.Errorf("the input is not a JSON object: %v", err)
		}
	}
	delete(fields, "signature")
	canon, err := canonicalValue(fields)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"operation": op, "workflowId": workflowID, "input": canon}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// canonicalValue checks a decoded JSON value for what would print
// differently in Go and jq, and writes whole numbers plainly.
func canonicalValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		// In key order, so the first problem found is always the same.
		keys := workflow.DeterministicKeys(v)
		for i, k := range keys {
			if err := canonicalString(k); err != nil {
				return nil, err
			}
			// Go reads field names regardless of case: two that differ only
			// in case would sign one thing and mean another.
			for _, other := range keys[:i] {
				if strings.EqualFold(k, other) {
					return nil, fmt.Errorf("fields %q and %q of a signed request differ only in case: name each field once", other, k)
				}
			}
			c, err := canonicalValue(v[k])
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			c, err := canonicalValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case json.Number:
		// jq holds numbers as doubles: whole ones up to 2^53 print alike.
		f, err := strconv.ParseFloat(v.String(), 64)
		if n, ierr := strconv.ParseInt(v.String(), 10, 64); ierr == nil && (n > 1<<53 || n < -(1<<53)) {
			f = math.Inf(1)
		}
		if err != nil || math.IsInf(f, 0) || f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) || (f == 0 && strings.HasPrefix(v.String(), "-")) {
			return nil, fmt.Errorf("number %s in a signed request is not a plain whole number: write whole numbers up to 2^53 plainly", v)
		}
		return json.Number(strconv.FormatInt(int64(f), 10)), nil
	case string:
		return v, canonicalString(v)
	}
	return v, nil
}

func canonicalString(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("a signed request's text must be UTF-8")
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("a signed request's text may not hold the control character %U", r)
		}
	}
	return nil
}

// verifySignature checks that input, sent as operation op to workflowID,
// is signed by a key listed for by, in SignatureNamespace, at a time fresh
// accepts, with a nonce not in seen. It returns the signer and the nonce to
// remember. Every refusal says what to do.
func verifySignature(signers []allowedSigner, op, workflowID string, input []byte, by string, fresh func(time.Time) error, seen []SeenNonce) (Signer, SeenNonce, error) {
	var sig Signature
	// Only the signature's fields: the rest is the operation's to read.
	_ = json.Unmarshal(input, &sig)
	switch {
	case sig.Signature == "":
		return Signer{}, SeenNonce{}, errors.New(`it is not signed, and this vault requires signatures: sign it with the starter (--key, or a key in ssh-agent), or by hand with ssh-keygen -Y sign -n recoveryvault (see the README)`)
	case len(sig.Nonce) < 8 || len(sig.Nonce) > 128:
		return Signer{}, SeenNonce{}, errors.New(`its "nonce" must be 8 to 128 characters never used before: sign it again with a fresh nonce`)
	case reservedName(by):
		return Signer{}, SeenNonce{}, errors.New("a signed request must name its signer in requestedBy")
	}
	at, err := time.Parse(time.RFC3339, sig.SignedAt)
	if err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf(`its "signedAt" %q is not an RFC 3339 time such as "2026-12-01T10:00:00Z"`, sig.SignedAt)
	}
	if err := fresh(at); err != nil {
		return Signer{}, SeenNonce{}, err
	}
	if slices.ContainsFunc(seen, func(n SeenNonce) bool { return n.Nonce == sig.Nonce }) {
		return Signer{}, SeenNonce{}, errors.New("its nonce has been used already: a signed request counts once; sign it again with a fresh nonce")
	}
	if len(seen) >= maxNonces {
		return Signer{}, SeenNonce{}, &busyError{fmt.Sprintf("%d signed requests in the last %s are all this vault takes: try again later", maxNonces, 2*SignatureMaxSkew)}
	}
	parsed, err := sshsig.Unarmor([]byte(sig.Signature))
	if err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf(`its "signature" is not an armored SSH signature (%v): give the text ssh-keygen -Y sign writes`, err)
	}
	if parsed.Namespace != SignatureNamespace {
		return Signer{}, SeenNonce{}, fmt.Errorf("it is signed in namespace %q, not %q: sign with ssh-keygen -Y sign -n %s", parsed.Namespace, SignatureNamespace, SignatureNamespace)
	}
	fingerprint := ssh.FingerprintSHA256(parsed.PublicKey)
	i := slices.IndexFunc(signers, func(s allowedSigner) bool { return s.Fingerprint == fingerprint && s.listedFor(by) })
	if i < 0 {
		owners := ""
		for _, s := range signers {
			if s.Fingerprint == fingerprint {
				owners = "; that key is listed for " + strings.Join(s.Principals, ", ")
			}
		}
		return Signer{}, SeenNonce{}, fmt.Errorf("it is signed with key %s, which the allowed signers do not list for %s%s", fingerprint, by, owners)
	}
	msg, err := CanonicalMessage(op, workflowID, input)
	if err != nil {
		return Signer{}, SeenNonce{}, err
	}
	if err := parsed.HashAlgorithm.Supported(); err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf("its hash algorithm: %v", err)
	}
	if err := sshsig.Verify(bytes.NewReader(msg), parsed, signers[i].key, parsed.HashAlgorithm, SignatureNamespace); err != nil {
		return Signer{}, SeenNonce{}, fmt.Errorf("its signature does not match this request (%v): the operation, the workflow ID and every field are signed; sign exactly what is sent", err)
	}
	return Signer{Principal: by, Fingerprint: fingerprint}, SeenNonce{Nonce: sig.Nonce, SignedAt: at}, nil
}

// withinSkew accepts a signature made within SignatureMaxSkew of now.
func withinSkew(now time.Time) func(time.Time) error {
	return func(at time.Time) error {
		if d := now.Sub(at); d > SignatureMaxSkew || d < -SignatureMaxSkew {
			return fmt.Errorf("it was signed at %s, more than %s from the workflow's clock (%s): sign it again now",
				rfc3339(at), SignatureMaxSkew, rfc3339(now))
		}
		return nil
	}
}

// busyError is a refusal for a cause that passes (the vault has taken all
// the signed requests it remembers for now): an item's delete waits and
// asks again instead of being refused.
type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }

// freshNonces are the nonces still within the skew of now.
func freshNonces(seen []SeenNonce, now time.Time) []SeenNonce {
	return slices.DeleteFunc(slices.Clone(seen), func(n SeenNonce) bool { return now.Sub(n.SignedAt) > SignatureMaxSkew })
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
		return Unsigned, nil
	}
	var sig Signature
	_ = json.Unmarshal(input, &sig)
	if !required && sig.Signature == "" {
		return Unsigned, nil
	}
	signers, err := parseAllowedSigners(v.st.AllowedSigners)
	if err != nil {
		return "", err
	}
	now := workflow.Now(ctx)
	v.st.Nonces = freshNonces(v.st.Nonces, now)
	s, n, err := verifySignature(signers, op, workflowID, input, by, withinSkew(now), v.st.Nonces)
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
	var sig Signature
	if json.Unmarshal(input, &sig) != nil || sig.Nonce == "" {
		return
	}
	v.st.Nonces = slices.DeleteFunc(v.st.Nonces, func(n SeenNonce) bool { return n.Nonce == sig.Nonce })
}

// AwaitedApproval is a delete an item registered at its vault for
// approval. On a vault that required signatures when the delete was
// requested, it holds who may approve and their keys, so the item checks
// an approval's signature itself before it asks the vault anything.
type AwaitedApproval struct {
	RequestID   string    `json:"requestId"`
	RequestedBy string    `json:"requestedBy"`
	ExpiresAt   time.Time `json:"expiresAt"`
	// Signer is the key that signed the delete, or Unsigned.
	Signer string `json:"signer,omitempty"`
	// Approvers and ApproverKeys (allowed_signers lines) are the vault's
	// when the delete was requested; no keys means an unsigned vault.
	Approvers    []string `json:"approvers,omitempty"`
	ApproverKeys string   `json:"approverKeys,omitempty"`
	// Confirming is an approval received that the vault could not confirm
	// yet (busy, restarting): it is asked again, as a delete would be.
	Confirming *Confirming `json:"confirming,omitempty"`
}

// Confirming is an approval waiting for its vault's confirmation.
type Confirming struct {
	By       string    `json:"by"`
	Approval []byte    `json:"approval,omitempty"`
	Attempts int       `json:"attempts"`
	RetryAt  time.Time `json:"retryAt"`
	Why      string    `json:"why"`
}

// checkApproval checks, at the item, a signed approval of delete request
// a: the approve update as its approver sent it to the vault, signed by a
// key the vault listed for an approver other than the requester when the
// delete was requested, before the request expired, with another key than
// the request's. The vault then confirms it (approvedDelete): only the
// vault knows of a rejection, a withdrawal or a revoked key since, and it
// counts the approval once.
func checkApproval(a AwaitedApproval, vaultID string, approval []byte) (Signer, error) {
	var req DecisionRequest
	if err := decodeJSON(approval, &req); err != nil {
		return Signer{}, fmt.Errorf("the approval of request %s cannot be read: %v", a.RequestID, err)
	}
	signers, err := parseAllowedSigners(a.ApproverKeys)
	if err != nil {
		return Signer{}, err
	}
	switch {
	case req.RequestID != a.RequestID:
		return Signer{}, fmt.Errorf("the approval is of request %q, not %s", req.RequestID, a.RequestID)
	case sameIdentity(req.RequestedBy, a.RequestedBy):
		return Signer{}, fmt.Errorf("%s requested %s and cannot approve it", req.RequestedBy, a.RequestID)
	case !slices.ContainsFunc(a.Approvers, func(n string) bool { return sameIdentity(n, req.RequestedBy) }):
		return Signer{}, fmt.Errorf("%s is not an approver of vault %s", req.RequestedBy, vaultID)
	}
	// An approval is for the request's window; the vault checked its
	// freshness when it took it, and confirms it once.
	beforeExpiry := func(at time.Time) error {
		if !at.Before(a.ExpiresAt) {
			return fmt.Errorf("it was signed at %s, after request %s expired at %s: ask again", rfc3339(at), a.RequestID, rfc3339(a.ExpiresAt))
		}
		return nil
	}
	s, _, err := verifySignature(signers, UpdateApprove, VaultWorkflowID(vaultID), approval, req.RequestedBy, beforeExpiry, nil)
	if err != nil {
		return Signer{}, fmt.Errorf("the approval of request %s by %s: %w", a.RequestID, req.RequestedBy, err)
	}
	if s.Fingerprint == fingerprintOf(a.Signer) {
		return Signer{}, fmt.Errorf("the approval of request %s is signed with the key that signed the request (%s): a second person must approve", a.RequestID, s.Fingerprint)
	}
	return s, nil
}

// fingerprintOf is the key fingerprint in a signer's text
// ("alice (SHA256:...)"), or "" for an unsigned one.
func fingerprintOf(signer string) string {
	i := strings.LastIndex(signer, "(SHA256:")
	if i < 0 || !strings.HasSuffix(signer, ")") {
		return ""
	}
	return signer[i+1 : len(signer)-1]
}

// sharedApproverKeys names a key listed for more than one approver: its
// holder could request as one and approve as another.
func sharedApproverKeys(signers []allowedSigner, approvers []string) error {
	for _, s := range signers {
		var names []string
		for _, a := range approvers {
			// The same key may be on several lines.
			if slices.ContainsFunc(signers, func(o allowedSigner) bool { return o.Fingerprint == s.Fingerprint && o.listedFor(a) }) {
				names = append(names, a)
			}
		}
		if len(names) > 1 {
			return &Refusal{Message: fmt.Sprintf("key %s is listed for approvers %s: each approver needs a key of their own, or one person could request and approve",
				s.Fingerprint, strings.Join(names, " and "))}
		}
	}
	return nil
}
