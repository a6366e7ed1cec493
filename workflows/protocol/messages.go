package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
)

// Refusal is an operation the current state does not allow. Its message is
// meant for the person who asked.
type Refusal struct {
	Message string
	// Code names the rule and Field the input at fault (as the API names
	// it), so that each client can say it in its own words.
	Code, Field string
}

// Codes of refusals a client may say in its own words.
const (
	// CodeNameNeeded: the operation must name who asks (Field requestedBy).
	CodeNameNeeded = "nameNeeded"
	// CodeOutOfBounds: a number or a duration is outside its bounds.
	CodeOutOfBounds = "outOfBounds"
	// CodeBadValue: a value is not of the form the field takes.
	CodeBadValue = "badValue"
	// CodeNotFound: the field names something the item or vault lacks.
	CodeNotFound = "notFound"
)

// FieldRefusal refuses the value of one field of a request.
func FieldRefusal(code, field, format string, args ...any) *Refusal {
	return &Refusal{Message: fmt.Sprintf(format, args...), Code: code, Field: field}
}

// RefusalDetails are a refusal's code and field, as clients receive them.
type RefusalDetails struct {
	Code  string `json:"code,omitempty"`
	Field string `json:"field,omitempty"`
}

// RefusalOf is the code and field a refusal (Final) carries in err, if any.
func RefusalOf(err error) RefusalDetails {
	var d RefusalDetails
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		_ = app.Details(&d)
	}
	return d
}

func (r *Refusal) Error() string { return r.Message }

func Requester(by string) string {
	if by == "" {
		return signing.Anonymous
	}
	return by
}

// ErrTypeRefused is the error type of every refused operation.
const ErrTypeRefused = "OperationRefused"

// Final marks a refusal as final for every client: the Temporal CLI prints
// the type and whether retrying could help, and it cannot.
func Final(err error) error {
	if err == nil {
		return nil
	}
	var r *Refusal
	if errors.As(err, &r) && (r.Code != "" || r.Field != "") {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRefused, nil, RefusalDetails{Code: r.Code, Field: r.Field})
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRefused, nil)
}

// Bounds (docs/contract.md sections 2 and 6).
const (
	DefaultSoftDeleteRetentionDays = 14
	MinSoftDeleteRetentionDays     = 14
	MaxSoftDeleteRetentionDays     = 180
	MinFrequency                   = time.Minute
	MinRetentionDays               = 1
	MaxRetentionDays               = 3650
)

// Bounds of what a message may bring into a workflow: one oversized field
// kept in the state would fail the workflow's task for good.
const (
	MaxPayloadBytes = 64 << 10
	MaxReasonBytes  = 1 << 10
	MaxNameBytes    = 256
	MaxPathBytes    = 4 << 10
	// MaxDetailBytes bounds an audit entry's or an alert's detail: a
	// sentence and a reason.
	MaxDetailBytes = 2 << 10
)

// fieldBounds are the bounds of a message's fields by name, wherever they
// are in it; any other field is bounded by the payload's.
var fieldBounds = map[string]int{
	"requestedBy": MaxNameBytes, "approvedBy": MaxNameBytes, "vaultId": MaxNameBytes, "itemId": MaxNameBytes,
	"recoveryPointId": MaxNameBytes, "requestId": MaxNameBytes, "incarnation": MaxNameBytes,
	"reason":     MaxReasonBytes,
	"targetPath": MaxPathBytes, "sourcePath": MaxPathBytes,
}

// payloadBound is the bound of a message's whole payload: an item's delete
// asking its vault carries the delete's own payload inside its own.
func payloadBound(name string) int {
	if name == UpdateItemDelete {
		return 2 * MaxPayloadBytes
	}
	return MaxPayloadBytes
}

// checkBounds refuses a JSON message over its bounds, in a sentence that
// quotes none of it.
func checkBounds(name string, data []byte) error {
	if n, bound := len(data), payloadBound(name); n > bound {
		return fmt.Errorf("%s payload of %d bytes is over its bound of %d KiB: nothing of it was kept; send less", name, n, bound>>10)
	}
	var fields any
	if json.Unmarshal(data, &fields) != nil {
		return nil // the decoder says what is wrong
	}
	return fieldsWithin(name, fields)
}

func fieldsWithin(name string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range workflow.DeterministicKeys(v) {
			if s, ok := v[k].(string); ok {
				if bound, ok := fieldBounds[k]; ok && len(s) > bound {
					return fmt.Errorf("%s: %q of %d bytes is over its bound of %d bytes: send a shorter one", name, k, len(s), bound)
				}
			}
			if err := fieldsWithin(name, v[k]); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := fieldsWithin(name, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Clip cuts s to at most n bytes on a character boundary, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// Policy is an item's backup policy.
type Policy struct {
	// Frequency is a Go duration ("24h", "90m") or whole days ("1d").
	Frequency     string `json:"frequency"`
	RetentionDays int    `json:"retentionDays"`
	// Anomaly overrides the defaults of the rule that finds a backup
	// suspect.
	Anomaly *AnomalyRule `json:"anomaly,omitempty"`
	// VerifyEvery is how often a restore drill runs: a duration or whole
	// days, weekly when empty, "off" for never.
	VerifyEvery string `json:"verifyEvery,omitempty"`
}

// DefaultVerifyEvery is how often an item's restore drill runs.
const DefaultVerifyEvery = 7 * 24 * time.Hour

// VerifyInterval is the policy's drill interval; 0 for off.
func (p Policy) VerifyInterval() (time.Duration, error) {
	switch p.VerifyEvery {
	case "":
		return DefaultVerifyEvery, nil
	case "off":
		return 0, nil
	}
	d, err := ParseFrequency(p.VerifyEvery)
	if err != nil || d < time.Hour {
		return 0, FieldRefusal(CodeBadValue, "policy.verifyEvery", "policy.verifyEvery %q is not a duration of at least an hour, whole days such as \"7d\", or \"off\"", p.VerifyEvery)
	}
	return d, nil
}

// Request is the payload of stop, delete, undelete and resume.
type Request struct {
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Signature is required on a delete, and on deleteVault, by a vault
	// that holds allowed signers.
	signing.Signature
}

// RestoreRequest is the payload of the restore update.
type RestoreRequest struct {
	RecoveryPointID string `json:"recoveryPointId"`
	TargetPath      string `json:"targetPath"`
	RequestedBy     string `json:"requestedBy,omitempty"`
}

// ParseFrequency accepts Go durations and whole days ("7d").
func ParseFrequency(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New(`policy.frequency is missing: give a duration such as "24h" or "1d"`)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("policy.frequency %q is not a duration: use a form such as \"24h\", \"90m\" or \"1d\"", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("policy.frequency %q is not a duration: use a form such as \"24h\", \"90m\" or \"1d\"", s)
	}
	return d, nil
}

// DecodeRequest reads a stop/delete/undelete/resume payload exactly as the
// Temporal CLI sends it: none at all, null, {} or an object of known fields.
func DecodeRequest(name string, raw converter.RawValue) (Request, error) {
	var r Request
	err := DecodePayload(name, raw, &r, `{"requestedBy": "alice", "reason": "decommissioned"}`)
	return r, err
}

// VerifyRequest is the payload of verify: the point to read back, or
// none for the one due next.
type VerifyRequest struct {
	RecoveryPointID string `json:"recoveryPointId,omitempty"`
	RequestedBy     string `json:"requestedBy,omitempty"`
}

// DecodeRestoreRequest reads and checks a restore payload.
func DecodeRestoreRequest(raw converter.RawValue) (RestoreRequest, error) {
	var r RestoreRequest
	example := `{"recoveryPointId": "rp-...", "targetPath": "/restore/vm1", "requestedBy": "alice"}`
	if err := DecodePayload(UpdateRestore, raw, &r, example); err != nil {
		return r, err
	}
	if r.RecoveryPointID == "" {
		return r, FieldRefusal(CodeBadValue, "recoveryPointId", "recoveryPointId is needed: the status query lists them; payload like %s", example)
	}
	if r.TargetPath == "" || !filepath.IsAbs(r.TargetPath) {
		return r, FieldRefusal(CodeBadValue, "targetPath", "targetPath %q is not an absolute path: restore into an absent or empty directory on the worker", r.TargetPath)
	}
	return r, nil
}

func DecodePayload(name string, raw converter.RawValue, into any, example string) error {
	p := raw.Payload()
	if p == nil {
		return nil
	}
	switch enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc {
	case converter.MetadataEncodingNil:
		return nil
	case converter.MetadataEncodingJSON:
	default:
		return fmt.Errorf("%s payload has encoding %q: send a JSON object like %s", name, enc, example)
	}
	data := bytes.TrimSpace(p.GetData())
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%s payload %s is not a JSON object: send one like %s, or nothing", name, Quote(data), example)
	}
	if err := checkBounds(name, data); err != nil {
		return err
	}
	if err := DecodeJSON(data, into); err != nil {
		return fmt.Errorf("%s payload %s does not fit: %v; send one like %s", name, Quote(data), err, example)
	}
	return nil
}

// DecodeJSON reads a JSON object of known fields only.
func DecodeJSON(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// PayloadData is a payload's JSON text, nil for none: what a signature
// covers, field for field.
func PayloadData(raw converter.RawValue) []byte {
	p := raw.Payload()
	if p == nil || string(p.GetMetadata()[converter.MetadataEncoding]) != converter.MetadataEncodingJSON {
		return nil
	}
	return bytes.TrimSpace(p.GetData())
}

// SignedInput is a person's request as sent, kept for its signature's
// check only when it is signed: the rest of it is already in the event.
func SignedInput(raw converter.RawValue) []byte {
	data := PayloadData(raw)
	var sig signing.Signature
	if json.Unmarshal(data, &sig) != nil || sig.Signature == "" {
		return nil
	}
	return data
}

// Quote shows the start of a payload in a refusal.
func Quote(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
