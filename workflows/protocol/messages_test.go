package protocol

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func jsonPayload(data string) converter.RawValue {
	return converter.NewRawValue(&commonpb.Payload{
		Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)},
		Data:     []byte(data),
	})
}

func TestDecodeRequestAcceptsWhatTheCLISends(t *testing.T) {
	nilPayload, err := converter.GetDefaultDataConverter().ToPayload(nil)
	require.NoError(t, err)
	cases := map[string]struct {
		raw  converter.RawValue
		want Request
	}{
		"no payload":   {converter.RawValue{}, Request{}},
		"binary/null":  {converter.NewRawValue(nilPayload), Request{}},
		"json null":    {jsonPayload("null"), Request{}},
		"empty object": {jsonPayload("{}"), Request{}},
		"full":         {jsonPayload(`{"requestedBy":"alice","reason":"decommissioned"}`), Request{RequestedBy: "alice", Reason: "decommissioned"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeRequest("delete", c.raw)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestDecodeRequestRejectsMalformedPayloads(t *testing.T) {
	cases := map[string]struct {
		raw  converter.RawValue
		want string
	}{
		"json string":    {jsonPayload(`"text"`), "is not a JSON object"},
		"json number":    {jsonPayload(`42`), "is not a JSON object"},
		"number field":   {jsonPayload(`{"requestedBy": 7}`), "does not fit"},
		"unknown field":  {jsonPayload(`{"reson": "typo"}`), "unknown field"},
		"broken json":    {jsonPayload(`{"requestedBy":`), "does not fit"},
		"other encoding": {converter.NewRawValue(&commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("binary/plain")}, Data: []byte("x")}), "encoding"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeRequest("delete", c.raw)
			assert.ErrorContains(t, err, c.want)
		})
	}
}

func TestMessagesOverTheirBoundsAreRefusedWithoutQuotingThem(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	for name, c := range map[string]struct {
		op, data string
		want     string
	}{
		"payload over 64 KiB": {"delete", `{"requestedBy": "mallory", "reason": "` + long(70<<10) + `"}`, "delete payload of 71720 bytes is over its bound of 64 KiB"},
		"reason over 1 KiB":   {"delete", `{"reason": "` + long(1025) + `"}`, `"reason" of 1025 bytes is over its bound of 1024 bytes`},
		"name over 256 bytes": {"stop", `{"requestedBy": "` + long(257) + `"}`, `"requestedBy" of 257 bytes is over its bound of 256 bytes`},
		"path over 4 KiB":     {"restore", `{"recoveryPointId": "rp-1", "targetPath": "/` + long(4<<10) + `"}`, `"targetPath" of 4097 bytes`},
		"unknown field":       {"delete", `{"signature": "` + long(65<<10) + `"}`, "over its bound of 64 KiB"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if c.op == "restore" {
				_, err = DecodeRestoreRequest(jsonPayload(c.data))
			} else {
				_, err = DecodeRequest(c.op, jsonPayload(c.data))
			}
			require.ErrorContains(t, err, c.want)
			assert.Less(t, len(err.Error()), 300, "the refusal does not quote the message")
		})
	}
	at, err := DecodeRequest("delete", jsonPayload(`{"requestedBy": "`+long(256)+`", "reason": "`+long(1024)+`"}`))
	require.NoError(t, err, "the bounds themselves are allowed")
	assert.Len(t, at.Reason, 1024)
}

func TestClipCutsOnACharacterBoundary(t *testing.T) {
	assert.Equal(t, "short", Clip("short", 10))
	assert.Equal(t, "abcdefg...", Clip("abcdefghijklmnop", 10))
	got := Clip(strings.Repeat("é", 10), 9)
	assert.True(t, utf8.ValidString(got), got)
	assert.LessOrEqual(t, len(got), 9)
}

func TestDecodeRestoreRequestNeedsPointAndAbsoluteTarget(t *testing.T) {
	_, err := DecodeRestoreRequest(jsonPayload(`{"targetPath": "/tmp/x"}`))
	assert.ErrorContains(t, err, "recoveryPointId is needed")
	_, err = DecodeRestoreRequest(jsonPayload(`{"recoveryPointId": "rp-1", "targetPath": "relative"}`))
	assert.ErrorContains(t, err, `targetPath "relative" is not an absolute path`)
	_, err = DecodeRestoreRequest(converter.RawValue{})
	assert.ErrorContains(t, err, "recoveryPointId is needed")
	r, err := DecodeRestoreRequest(jsonPayload(`{"recoveryPointId": "rp-1", "targetPath": "/tmp/x", "requestedBy": "bob"}`))
	require.NoError(t, err)
	assert.Equal(t, RestoreRequest{"rp-1", "/tmp/x", "bob"}, r)
}

func TestParseFrequencyAcceptsDays(t *testing.T) {
	d, err := ParseFrequency("7d")
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, d)
	d, err = ParseFrequency("90m")
	require.NoError(t, err)
	assert.Equal(t, 90*time.Minute, d)
}

func TestFormatRemaining(t *testing.T) {
	assert.Equal(t, "13d 23h 59m", FormatRemaining(14*24*time.Hour-time.Minute))
	assert.Equal(t, "2h 5m", FormatRemaining(2*time.Hour+5*time.Minute+30*time.Second))
	assert.Equal(t, "0m", FormatRemaining(-time.Second))
	assert.Equal(t, "20s", FormatRemaining(20*time.Second+time.Millisecond))
}
