package console

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"recoveryvault/internal/items"
	"recoveryvault/internal/signing"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// view is what a page's template gets: the frame every page shares and the
// page's own Data.
type view struct {
	template string
	status   int
	writer   http.ResponseWriter

	Title    string
	Operator string
	// Here is the page's own address, for "say who you are" to come back to.
	Here string
	// IdentityHeader is set when the operator comes from the proxy.
	IdentityHeader string
	CSRF           string
	// Refresh is the address the page re-reads itself from while open;
	// empty for pages that do not change.
	Refresh       string
	RefreshMillis int64
	Crumbs        []crumb
	// Flash says what the last action did; Error why it was refused.
	Flash string
	Error string
	Data  any
}

type crumb struct{ Name, Href string }

// readTimeout bounds the Temporal calls of a page; actions, a restore
// among them, may take as long as they take.
const readTimeout = 20 * time.Second

// problemError is a failure shown as a page with its status code: the
// sentence is for the person reading it.
type problemError struct {
	status int
	msg    string
}

func (p *problemError) Error() string { return p.msg }

func problem(status int, format string, args ...any) error {
	return &problemError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (c *Console) newView(w http.ResponseWriter, r *http.Request, tmpl, title string) *view {
	return &view{
		template: tmpl, status: http.StatusOK, Title: title, writer: w, Here: pageOf(r),
		Operator: c.operator(r), IdentityHeader: c.opts.IdentityHeader, CSRF: csrfToken(w, r),
		RefreshMillis: c.opts.RefreshInterval.Milliseconds(),
	}
}

// pageOf is the page a request shows or, for a form's POST, the page the
// form was on: where "say who you are" comes back to.
func pageOf(r *http.Request) string {
	if r.Method == http.MethodPost {
		return localPath(path.Dir(r.URL.Path))
	}
	return localPath(r.URL.Path)
}

// page wraps a page handler: it makes sure a POST is the console's own
// and comes from a known operator, then renders what the handler filled
// in, or the problem it returned. In dev mode reading needs no name: it is
// asked when the operator first acts.
func (c *Console) page(f func(*http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := c.newView(w, r, "", "")
		if v.Operator == "" && c.opts.IdentityHeader != "" {
			c.renderProblem(w, r, problem(http.StatusUnauthorized,
				"The console takes your identity from the %s header, set by the authenticating proxy in front of it, and this request had none. Open the console through that proxy.",
				c.opts.IdentityHeader))
			return
		}
		if r.Method == http.MethodPost && !validCSRF(r) {
			c.renderProblem(w, r, errForgedForm)
			return
		}
		if r.Method == http.MethodPost && v.Operator == "" {
			// Nothing is done: the operator says who they are, then goes
			// back to the page the form was on.
			http.Redirect(w, r, "/operator?"+url.Values{"next": {v.Here}, "act": {"1"}}.Encode(), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodGet {
			// A page that Temporal cannot answer in time says so, rather
			// than piling up behind a server that is down.
			ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := f(r, v); err != nil {
			c.renderProblem(w, r, err)
			return
		}
		if v.template == "" {
			return // the handler redirected
		}
		c.render(w, v)
	}
}

func (c *Console) renderProblem(w http.ResponseWriter, r *http.Request, err error) {
	v := c.newView(w, r, "problem", "")
	var p *problemError
	if !errors.As(err, &p) {
		c.opts.Logger.Error("console", "path", r.URL.Path, "error", err)
		p = &problemError{status: http.StatusInternalServerError, msg: "Something went wrong on the console's side; it is in the worker's log."}
	}
	v.status = p.status
	v.Title = http.StatusText(p.status)
	v.Error = p.msg
	c.render(w, v)
}

// render writes a page in one piece, so a template error is a 500 page and
// never half a page.
func (c *Console) render(w http.ResponseWriter, v *view) {
	var buf bytes.Buffer
	if err := c.pages[v.template].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.opts.Logger.Error("console: render", "template", v.template, "error", err)
		http.Error(w, "the console could not render this page; the worker's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(v.status)
	_, _ = buf.WriteTo(w)
}

// redirect ends an action the Post/Redirect/Get way: a reload of the page
// that follows does not send the action again.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// ids reads and checks the vault and item of the address; an ID that
// could not exist is simply not found.
func ids(r *http.Request) (vaultID, itemID string, err error) {
	vaultID, itemID = r.PathValue("vaultId"), r.PathValue("itemId")
	if protocol.ValidateID("vault", vaultID) != nil {
		return "", "", problem(http.StatusNotFound, "There is no vault %q: vault IDs are letters, digits, '.', '_' and '-'.", vaultID)
	}
	if itemID != "" && protocol.ValidateID("item", itemID) != nil {
		return "", "", problem(http.StatusNotFound, "There is no item %q in vault %s: item IDs are letters, digits, '.', '_' and '-'.", itemID, vaultID)
	}
	return vaultID, itemID, nil
}

func vaultHref(vaultID string) string { return "/vaults/" + url.PathEscape(vaultID) }

func itemHref(vaultID, itemID string) string {
	return vaultHref(vaultID) + "/items/" + url.PathEscape(itemID)
}

// vaults is the page at /.
func (c *Console) vaults(r *http.Request, v *view) error {
	rows, more, err := c.listVaults(r.Context())
	if err != nil {
		return err
	}
	v.template, v.Title, v.Refresh = "vaults", "Vaults", "/"
	v.Data = struct {
		Vaults []vaultRow
		More   bool
		Max    int
	}{rows, more, maxVaults}
	return nil
}

// vaultData is a vault's page: its settings, its approval requests and a
// page of its items.
type vaultData struct {
	ID      string
	Status  vault.VaultStatus
	Filter  protocol.State
	Filters []filter
	Items   itemPage
	// Total is the count of the filter shown, as its link says.
	Total int
	// Purged counts the purged items, which "All" leaves out.
	Purged int
	// First is the position of the page's first item, from 1.
	First    int
	NextHref string
	Pending  []protocol.MuaRequest
	Decided  []protocol.MuaRequest
}

type filter struct {
	Label string
	State protocol.State
	Count int
	Href  string
}

// vault is the page at /vaults/{vaultId}: Backup Items.
func (c *Console) vault(r *http.Request, v *view) error {
	vaultID, _, err := ids(r)
	if err != nil {
		return err
	}
	st, err := c.vaultStatus(r.Context(), vaultID)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := vaultData{ID: vaultID, Status: st, Filter: protocol.State(q.Get("state"))}
	if d.Filter != "" && !slices.Contains(items.Keys, d.Filter) {
		return problem(http.StatusBadRequest, "%q is not a state: filter by Protected, ProtectionStopped, SoftDeleted, Purged, Waiting or Anomaly.", d.Filter)
	}
	token, err := base64.RawURLEncoding.DecodeString(q.Get("page"))
	if err != nil {
		return problem(http.StatusBadRequest, "This page of items is not one the console made: go back to the first page.")
	}
	d.First, _ = strconv.Atoi(q.Get("from"))
	d.First = max(d.First, 1)
	if d.Items, err = c.listItems(r.Context(), vaultID, d.Filter, token); err != nil {
		return err
	}
	// One count for each filter, from the queries that list them: "All"
	// is the items that exist, those holding data; purged ones are under
	// Purged.
	counts, err := c.countItems(r.Context(), vaultID)
	if err != nil {
		return err
	}
	all := counts[protocol.Protected] + counts[protocol.ProtectionStopped] + counts[protocol.SoftDeleted]
	d.Total = all
	d.Purged = counts[protocol.Purged]
	if d.Filter != "" {
		d.Total = counts[d.Filter]
	}
	d.Filters = append(d.Filters, filter{Label: "All", Count: all, Href: vaultHref(vaultID)})
	for _, s := range protocol.VisibleStates {
		d.Filters = append(d.Filters, filter{Label: stateLabel(s), State: s, Count: counts[s], Href: vaultHref(vaultID) + "?state=" + string(s)})
	}
	if len(d.Items.Next) > 0 {
		next := url.Values{"page": {base64.RawURLEncoding.EncodeToString(d.Items.Next)}, "from": {strconv.Itoa(d.First + len(d.Items.Rows))}}
		if d.Filter != "" {
			next.Set("state", string(d.Filter))
		}
		d.NextHref = vaultHref(vaultID) + "?" + next.Encode()
	}
	d.Filters = append(d.Filters, filter{Label: "Delete waiting", State: waitingFilter, Count: counts[waitingFilter], Href: vaultHref(vaultID) + "?state=" + string(waitingFilter)},
		filter{Label: "Anomaly", State: anomalyFilter, Count: counts[anomalyFilter], Href: vaultHref(vaultID) + "?state=" + string(anomalyFilter)})
	for _, req := range st.Requests {
		if req.State == protocol.RequestPending {
			d.Pending = append(d.Pending, req)
			for i := range d.Items.Rows {
				if row := &d.Items.Rows[i]; req.Operation == protocol.UpdateDelete && row.ItemID == req.ItemID && row.Running {
					row.AwaitsApproval = true
				}
			}
		} else {
			d.Decided = append(d.Decided, req)
		}
	}
	v.template, v.Title, v.Data = "vault", "Backup Items: "+vaultID, d
	v.Refresh = r.URL.RequestURI()
	v.Crumbs = []crumb{{"Vaults", "/"}, {vaultID, ""}}
	v.Flash = vaultFlash(r, st.Requests)
	return nil
}

// itemData is an item's page.
type itemData struct {
	VaultID, ItemID string
	Status          item.Status
	Offered         []protocol.Operation
	// SoftDeleteDisabled warns that a delete would purge at once.
	SoftDeleteDisabled bool
	// Pending are this item's deletes waiting for approval at the vault.
	Pending []protocol.MuaRequest
	// Signed says the vault requires signed critical operations: the
	// console, which holds no one's key, shows the commands instead.
	Signed bool
	// GuardHolds says the vault's mass-delete guard holds the delete that
	// waits, which the page then says in its own words.
	GuardHolds bool
	// Form holds what the operator typed into a form that was refused.
	Form map[string]string
}

// item is the page at /vaults/{vaultId}/items/{itemId}.
func (c *Console) item(r *http.Request, v *view) error {
	vaultID, itemID, err := ids(r)
	if err != nil {
		return err
	}
	if err := c.fillItem(r, v, vaultID, itemID); err != nil {
		return err
	}
	if v.Flash = itemFlash(r, v.Data.(itemData).Status.Audit); v.Flash != "" {
		// A page left open keeps saying it only while it is still so.
		v.Refresh = r.URL.RequestURI()
	}
	return nil
}

func (c *Console) fillItem(r *http.Request, v *view, vaultID, itemID string) error {
	st, err := c.itemStatus(r.Context(), vaultID, itemID)
	if err != nil {
		return err
	}
	d := itemData{VaultID: vaultID, ItemID: itemID, Status: st, Offered: item.Offered(st.ProtectionState), Form: map[string]string{}}
	// The vault says what a delete made now would get and what waits for
	// approval, in one read; an item page still shows when its vault does
	// not answer.
	if vs, err := c.vaultStatus(r.Context(), vaultID); err == nil {
		d.Status, d.SoftDeleteDisabled = items.VaultWindow(st, vs.SoftDelete)
		d.Signed = vs.SignaturesRequired
		d.GuardHolds = st.PendingDelete != nil && st.PendingDelete.Held && !vs.MassDeleteGuard.HeldSince.IsZero()
		for _, req := range vs.Requests {
			if req.State == protocol.RequestPending && req.ItemID == itemID {
				d.Pending = append(d.Pending, req)
			}
		}
	}
	if v.Data != nil {
		d.Form = v.Data.(map[string]string)
	}
	v.template, v.Title, v.Data = "item", itemID+" in "+vaultID, d
	v.Refresh = itemHref(vaultID, itemID)
	v.Crumbs = []crumb{{"Vaults", "/"}, {vaultID, vaultHref(vaultID)}, {itemID, ""}}
	return nil
}

// itemAction is a POST to /vaults/{vaultId}/items/{itemId}/{update}: one
// of the item's updates, sent as the operator.
func (c *Console) itemAction(r *http.Request, v *view) error {
	vaultID, itemID, err := ids(r)
	if err != nil {
		return err
	}
	name := r.PathValue("update")
	op := protocol.Operation(name)
	if !slices.Contains(protocol.UserOperations, op) {
		return problem(http.StatusNotFound, "An item has no operation %q: it takes %s.", name, operationList())
	}
	form := map[string]string{}
	for _, k := range []string{"reason", "confirmName", "recoveryPointId", "targetPath"} {
		form[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	if err := checkLengths(form); err != nil {
		return err
	}
	var arg any = protocol.Request{RequestedBy: v.Operator, Reason: form["reason"]}
	switch op {
	case protocol.OpRestore:
		arg = protocol.RestoreRequest{RecoveryPointID: form["recoveryPointId"], TargetPath: form["targetPath"], RequestedBy: v.Operator}
	case protocol.OpVerify:
		arg = protocol.VerifyRequest{RequestedBy: v.Operator}
	}
	var refusal error
	if op == protocol.OpDelete {
		// As in Azure: the operator types the item's name and says why.
		switch {
		case c.requiresSignatures(r, vaultID):
			refusal = problem(http.StatusBadRequest, "Vault %s requires signed critical operations, and the console holds no one's key: delete with the starter or the Temporal CLI, as this page shows. Nothing was deleted.", vaultID)
		case form["confirmName"] != itemID:
			refusal = problem(http.StatusBadRequest, "Type the item's name, %s, to confirm that its backup data is to be deleted. Nothing was deleted.", itemID)
		case form["reason"] == "":
			refusal = problem(http.StatusBadRequest, "Give a reason for deleting the backup data: it goes into the audit trail. Nothing was deleted.")
		}
	}
	var st item.Status
	if refusal == nil {
		refusal = c.update(r.Context(), protocol.WorkflowID(vaultID, itemID), name, arg, &st)
	}
	if refusal != nil {
		var p *problemError
		if !errors.As(refusal, &p) || p.status == http.StatusBadGateway {
			return refusal
		}
		// The item's page again, with the refusal and what was typed.
		v.Data = form
		if err := c.fillItem(r, v, vaultID, itemID); err != nil {
			return err
		}
		v.status, v.Error = p.status, p.msg
		return nil
	}
	done := url.Values{"done": {name}}
	switch {
	case st.PendingApproval != nil:
		done.Set("request", st.PendingApproval.RequestID)
	case op == protocol.OpDelete && purgedAtOnce(st):
		done.Set("done", deletedAndPurged)
	case op == protocol.OpDelete && st.PendingDelete != nil:
		done.Set("done", deleteWaiting)
	}
	// The page says it was done only while the audit line the action
	// wrote is there and nothing a person did since came after it.
	if n := len(st.Audit); n > 0 {
		done.Set("at", st.Audit[n-1].Time.UTC().Format(time.RFC3339Nano))
	}
	redirect(v.writer, r, itemHref(vaultID, itemID)+"?"+done.Encode())
	return nil
}

// purgedAtOnce says whether a delete's answer is a purge, not a soft
// delete: with soft delete off for the vault, the deadline is the delete.
func purgedAtOnce(st item.Status) bool {
	if st.ProtectionState == protocol.Purged {
		return true
	}
	deadline, err := time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
	return st.ProtectionState == protocol.SoftDeleted && err == nil && !deadline.After(time.Now())
}

// vaultAction is a POST to /vaults/{vaultId}/{update}: approve or reject a
// request waiting for multi-user authorization.
func (c *Console) vaultAction(r *http.Request, v *view) error {
	vaultID, _, err := ids(r)
	if err != nil {
		return err
	}
	name := r.PathValue("update")
	if name != protocol.UpdateApprove && name != protocol.UpdateReject {
		return problem(http.StatusNotFound, "A vault has no operation %q here: the console approves and rejects requests (%s, %s).",
			name, protocol.UpdateApprove, protocol.UpdateReject)
	}
	req := protocol.DecisionRequest{RequestID: r.PostFormValue("requestId"), RequestedBy: v.Operator, Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	if err := checkLengths(map[string]string{"requestId": req.RequestID, "reason": req.Reason}); err != nil {
		return err
	}
	var st vault.VaultStatus
	err = nil
	if c.requiresSignatures(r, vaultID) {
		err = problem(http.StatusBadRequest, "Vault %s requires signed approvals, and the console holds no one's key: %s with the starter or the Temporal CLI, as this page shows. Nothing was changed.", vaultID, name)
	}
	if err == nil {
		err = c.update(r.Context(), protocol.VaultWorkflowID(vaultID), name, req, &st)
	}
	if err != nil {
		var p *problemError
		if !errors.As(err, &p) || p.status == http.StatusBadGateway {
			return err
		}
		if err := c.vault(r, v); err != nil {
			return err
		}
		v.status, v.Error, v.Refresh = p.status, p.msg, vaultHref(vaultID)
		return nil
	}
	redirect(v.writer, r, vaultHref(vaultID)+"?"+url.Values{"done": {name}, "request": {req.RequestID}}.Encode())
	return nil
}

// requiresSignatures says whether the vault requires signed critical
// operations; one that cannot be read is left to refuse for itself.
func (c *Console) requiresSignatures(r *http.Request, vaultID string) bool {
	st, err := c.vaultStatus(r.Context(), vaultID)
	return err == nil && st.SignaturesRequired
}

// maxFieldLength bounds what a form field may carry into a workflow: a
// reason is kept in the audit, which crosses every continue-as-new.
const maxFieldLength = 1024

func checkLengths(form map[string]string) error {
	for k, v := range form {
		if utf8.RuneCountInString(v) > maxFieldLength {
			return problem(http.StatusRequestEntityTooLarge, "The %s you gave is longer than %d characters: shorten it. Nothing was changed.", k, maxFieldLength)
		}
	}
	return nil
}

func operationList() string {
	var s []string
	for _, op := range protocol.UserOperations {
		s = append(s, string(op))
	}
	return fmt.Sprint(s)
}

// deletedAndPurged is the flash word of a delete that purged at once;
// deleteWaiting of one that waits for its vault to answer.
const (
	deletedAndPurged = "deletedAndPurged"
	deleteWaiting    = "deleteWaiting"
	deleteCancelled  = "deleteCancelled"
)

var requestIDPattern = regexp.MustCompile(`^r-[0-9]{1,9}$`)

// itemFlash says what the action that led to this page did, as the item's
// audit says it now: the address names the action and the time of the audit
// line it wrote; the line must be there, and no person's operation after
// it. An address alone makes no banner.
func itemFlash(r *http.Request, audit []protocol.AuditEntry) string {
	q := r.URL.Query()
	done := q.Get("done")
	at, err := time.Parse(time.RFC3339Nano, q.Get("at"))
	if done == "" || err != nil {
		return ""
	}
	op := map[string]string{deletedAndPurged: protocol.UpdateDelete, deleteWaiting: protocol.UpdateDelete, deleteCancelled: protocol.UpdateUndelete}[done]
	if op == "" {
		op = done
	}
	i := slices.IndexFunc(audit, func(e protocol.AuditEntry) bool {
		return e.Operation == op && e.Time.Equal(at) && e.Outcome != protocol.OutcomeRejected
	})
	if i < 0 || slices.ContainsFunc(audit[i+1:], func(e protocol.AuditEntry) bool { return !signing.ReservedName(e.RequestedBy) }) {
		return ""
	}
	request := q.Get("request")
	if !requestIDPattern.MatchString(request) {
		request = ""
	}
	if op == protocol.UpdateUndelete {
		// What the undelete undid is the delete before it: a soft delete,
		// or one still waiting for the vault.
		done = protocol.UpdateUndelete
		for _, e := range slices.Backward(audit[:i]) {
			if e.Operation == protocol.UpdateDelete {
				if e.Outcome == protocol.OutcomeWaiting {
					done = deleteCancelled
				}
				break
			}
		}
	}
	switch done {
	case protocol.UpdateStop:
		return "Protection stopped. Every recovery point is retained."
	case protocol.UpdateDelete:
		if request != "" {
			return "The delete waits for approval: request " + request + ". An approver other than you approves it on the vault's page; nothing is deleted until then."
		}
		return "Backup data soft-deleted. It is kept, and can be undeleted, until the purge time shown."
	case deletedAndPurged:
		return "Backup data deleted and purged at once: soft delete is disabled for this vault."
	case deleteCancelled:
		return "The delete that waited for the vault is cancelled: nothing was deleted."
	case deleteWaiting:
		return "The delete waits for the vault, which could not answer: nothing is deleted yet. It is applied as soon as the vault answers; Cancel the waiting delete stops it."
	case protocol.UpdateUndelete:
		return "Undeleted: the purge is cancelled and every recovery point is kept. Protection stays stopped until you resume it."
	case protocol.UpdateResume:
		return "Protection resumed. Recovery points that expired while it was stopped are collected now."
	case protocol.UpdateBackupNow:
		return "Backup taken: a new recovery point is listed."
	case protocol.UpdateRestore:
		return "Restore done: every file was written and verified by its checksum. The audit trail says where."
	}
	return ""
}

// vaultFlash says what a decision that led to this page did, as the
// vault's requests say it now.
func vaultFlash(r *http.Request, requests []protocol.MuaRequest) string {
	q := r.URL.Query()
	id := q.Get("request")
	want := map[string]protocol.RequestState{protocol.UpdateApprove: protocol.RequestApproved, protocol.UpdateReject: protocol.RequestRejected}[q.Get("done")]
	if want == "" || !slices.ContainsFunc(requests, func(req protocol.MuaRequest) bool { return req.RequestID == id && req.State == want }) {
		return ""
	}
	return fmt.Sprintf("Request %s %s.", id, strings.ToLower(string(want)))
}

// Labels and descriptions of states, in Azure's words.
func stateLabel(s protocol.State) string {
	switch s {
	case protocol.ProtectionStopped:
		return "Protection stopped"
	case protocol.SoftDeleted:
		return "Soft deleted"
	}
	return string(s)
}

func stateDescription(s protocol.State) string {
	switch s {
	case protocol.Protected:
		return "Backups run on schedule."
	case protocol.ProtectionStopped:
		return "Stop protection with retain data: no backups, every recovery point kept."
	case protocol.SoftDeleted:
		return "Backup data deleted, kept until the purge time: undelete it to recover."
	case protocol.Purged:
		return "The backup data has been purged for good."
	}
	return ""
}

var templateFuncs = template.FuncMap{
	"stateLabel":       stateLabel,
	"stateDescription": stateDescription,
	"offers": func(ops []protocol.Operation, op string) bool {
		return slices.Contains(ops, protocol.Operation(op))
	},
	"add": func(n ...int) int {
		sum := 0
		for _, x := range n {
			sum += x
		}
		return sum
	},
	"join":  strings.Join,
	"count": func(counts map[protocol.State]int, s string) int { return counts[protocol.State(s)] },
	// decidedDetail is what a decided request's detail adds to "State by
	// who": "rejected by bob; reason: no ticket" adds the reason.
	"decidedDetail": func(r protocol.MuaRequest) string {
		said := strings.ToLower(string(r.State)) + " by " + r.DecidedBy
		return strings.TrimPrefix(strings.TrimPrefix(r.Detail, said), "; ")
	},
	"reverse": func(a []protocol.AuditEntry) []protocol.AuditEntry {
		r := slices.Clone(a)
		slices.Reverse(r)
		return r
	},
	"itemHref":   itemHref,
	"anomaly":    protocol.Anomaly,
	"changeText": func(c *protocol.Change) string { return c.Text() },
	"lastPoint": func(rps []protocol.RecoveryPoint) *protocol.RecoveryPoint {
		if len(rps) == 0 {
			return nil
		}
		return &rps[len(rps)-1]
	},
	"workflowID": protocol.WorkflowID,
	// restoreInput is the restore update's JSON, quoted for a shell.
	"restoreInput": func(rp, itemID, operator string) string {
		b, _ := json.Marshal(protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: "/restore/" + itemID, RequestedBy: cmp.Or(operator, "you@example.com")})
		return shellQuote(string(b))
	},
	"shellQuote": shellQuote,
	// requestJSON is a request's payload, as a shell word: pairs of field
	// names and values.
	"requestJSON": func(pairs ...string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(pairs); i += 2 {
			m[pairs[i]] = pairs[i+1]
		}
		b, _ := json.Marshal(m)
		return shellQuote(string(b))
	},
	"vaultWorkflowID": protocol.VaultWorkflowID,
	"vaultHref":       vaultHref,
	"remaining":       func(t time.Time) string { return remaining(time.Until(t)) },
	"iso":             func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"when":            when,
	"whenText": func(s string) string {
		if s == "" {
			return "—"
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return s
		}
		return when(t)
	},
	"parseTime": func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t },
	"size":      size,
	// Approve and reject are offered to whom the vault would let decide.
	"mayApprove": func(st vault.VaultStatus, req protocol.MuaRequest, who string) bool {
		return vault.CheckDecision(st.VaultID, st.MultiUserAuthorization, req, who, true, time.Now()) == nil
	},
	"mayReject": func(st vault.VaultStatus, req protocol.MuaRequest, who string) bool {
		return vault.CheckDecision(st.VaultID, st.MultiUserAuthorization, req, who, false, time.Now()) == nil
	},
}

// shellQuote makes s one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remaining is the countdown's text, to the second; the page's script
// ticks it on from the same deadline.
func remaining(d time.Duration) string {
	if d <= 0 {
		return "purge due"
	}
	d = d.Truncate(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd %s", days, clock(d))
	}
	return clock(d)
}

func clock(d time.Duration) string {
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	return fmt.Sprintf("%dh %02dm %02ds", h, m, s)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
