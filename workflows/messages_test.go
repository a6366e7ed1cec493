package workflows

import (
	"testing"
	"time"

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

func TestDecodeRestoreRequestNeedsPointAndAbsoluteTarget(t *testing.T) {
	_, err := DecodeRestoreRequest(jsonPayload(`{"targetPath": "/tmp/x"}`))
	assert.ErrorContains(t, err, "needs a recoveryPointId")
	_, err = DecodeRestoreRequest(jsonPayload(`{"recoveryPointId": "rp-1", "targetPath": "relative"}`))
	assert.ErrorContains(t, err, "absolute targetPath")
	_, err = DecodeRestoreRequest(converter.RawValue{})
	assert.ErrorContains(t, err, "needs a recoveryPointId")
	r, err := DecodeRestoreRequest(jsonPayload(`{"recoveryPointId": "rp-1", "targetPath": "/tmp/x", "requestedBy": "bob"}`))
	require.NoError(t, err)
	assert.Equal(t, RestoreRequest{"rp-1", "/tmp/x", "bob"}, r)
}

func TestItemInputValidation(t *testing.T) {
	valid := func() ItemInput {
		return ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: "/data/vm1", Policy: Policy{Frequency: "24h", RetentionDays: 30}}
	}
	in := valid()
	require.NoError(t, in.Validate())
	assert.Equal(t, 14, in.SoftDeleteRetentionDays, "default soft-delete retention")

	cases := map[string]struct {
		change func(*ItemInput)
		want   string
	}{
		"missing vault":         {func(i *ItemInput) { i.VaultID = "" }, "vaultId is missing"},
		"vault with slash":      {func(i *ItemInput) { i.VaultID = "a/b" }, `vaultId "a/b" is not valid`},
		"missing item":          {func(i *ItemInput) { i.ItemID = "" }, "itemId is missing"},
		"item dot-dot":          {func(i *ItemInput) { i.ItemID = ".." }, "is not valid"},
		"missing source":        {func(i *ItemInput) { i.SourcePath = "" }, "sourcePath is missing"},
		"relative source":       {func(i *ItemInput) { i.SourcePath = "data" }, "is not absolute"},
		"frequency missing":     {func(i *ItemInput) { i.Policy.Frequency = "" }, "policy.frequency is missing"},
		"frequency garbage":     {func(i *ItemInput) { i.Policy.Frequency = "often" }, "is not a duration"},
		"frequency too short":   {func(i *ItemInput) { i.Policy.Frequency = "30s" }, "too short"},
		"retention too short":   {func(i *ItemInput) { i.Policy.RetentionDays = 0 }, "at least 1 day"},
		"soft delete too short": {func(i *ItemInput) { i.SoftDeleteRetentionDays = 7 }, "14 to 180 days"},
		"soft delete too long":  {func(i *ItemInput) { i.SoftDeleteRetentionDays = 181 }, "14 to 180 days"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := valid()
			c.change(&in)
			assert.ErrorContains(t, in.Validate(), c.want)
		})
	}
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
