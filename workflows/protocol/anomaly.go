package protocol

import (
	"fmt"
	"slices"
)

// Change is what one backup changed against the item's point before it:
// counts and an extension, never a file's name.
type Change struct {
	// Files is how many files the point before held.
	Files   int `json:"files"`
	Added   int `json:"added"`
	Changed int `json:"changed"`
	Deleted int `json:"deleted"`
	// Replaced are added files of one new extension, at most as many as
	// deleted: ransomware's encrypted copies of originals it deleted.
	Replaced     int    `json:"replaced,omitempty"`
	NewExtension string `json:"newExtension,omitempty"`
	// BytesChanged were added or changed; of the bytes Sampled while
	// hashing, Incompressible did not compress, as encrypted data does not.
	BytesChanged   int64 `json:"bytesChanged"`
	Sampled        int64 `json:"sampled"`
	Incompressible int64 `json:"incompressible"`
	// RansomNotes are added files named like ransom notes.
	RansomNotes int `json:"ransomNotes,omitempty"`
}

// Touched are the files changed or replaced.
func (c Change) Touched() int { return c.Changed + c.Replaced }

// Plus is the change of two backups in a row, against the first's point
// before.
func (c Change) Plus(next Change) Change {
	sum := next
	sum.Files = c.Files
	sum.Added += c.Added
	sum.Changed += c.Changed
	sum.Deleted += c.Deleted
	sum.Replaced += c.Replaced
	sum.BytesChanged += c.BytesChanged
	sum.Sampled += c.Sampled
	sum.Incompressible += c.Incompressible
	sum.RansomNotes += c.RansomNotes
	if sum.NewExtension == "" {
		sum.NewExtension = c.NewExtension
	}
	return sum
}

// AnomalyRule says when a backup's change is abnormal. Zero fields take
// the defaults.
type AnomalyRule struct {
	// ChangedPercent of the files changed or replaced, with
	// IncompressiblePercent of the sampled changed bytes incompressible.
	ChangedPercent        int `json:"changedPercent,omitempty"`
	IncompressiblePercent int `json:"incompressiblePercent,omitempty"`
	// ReplacedFiles replaced by files with one new extension.
	ReplacedFiles int `json:"replacedFiles,omitempty"`
	// Points are how many backups since the last clear are judged together,
	// so that encryption spread over days adds up.
	Points int `json:"points,omitempty"`
}

// Defaults of the anomaly rule.
const (
	DefaultChangedPercent        = 30
	DefaultIncompressiblePercent = 80
	DefaultReplacedFiles         = 50
	DefaultAnomalyPoints         = 7
	// notePercent of the files touched, with a ransom note added, is
	// abnormal whatever the other figures.
	notePercent = 10
)

// WithDefaults fills the zero fields.
func (r AnomalyRule) WithDefaults() AnomalyRule {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.ChangedPercent, DefaultChangedPercent)
	def(&r.IncompressiblePercent, DefaultIncompressiblePercent)
	def(&r.ReplacedFiles, DefaultReplacedFiles)
	def(&r.Points, DefaultAnomalyPoints)
	return r
}

// Check says what is wrong with a rule from a policy, or nil.
func (r AnomalyRule) Check() error {
	switch {
	case r.ChangedPercent < 0 || r.ChangedPercent > 100:
		return FieldRefusal(CodeOutOfBounds, "policy.anomaly.changedPercent", "policy.anomaly.changedPercent %d is not a percentage from 1 to 100", r.ChangedPercent)
	case r.IncompressiblePercent < 0 || r.IncompressiblePercent > 100:
		return FieldRefusal(CodeOutOfBounds, "policy.anomaly.incompressiblePercent", "policy.anomaly.incompressiblePercent %d is not a percentage from 1 to 100", r.IncompressiblePercent)
	case r.ReplacedFiles < 0 || r.ReplacedFiles > 1_000_000:
		return FieldRefusal(CodeOutOfBounds, "policy.anomaly.replacedFiles", "policy.anomaly.replacedFiles %d is not a number of files from 1 to 1000000", r.ReplacedFiles)
	case r.Points < 0 || r.Points > 100:
		return FieldRefusal(CodeOutOfBounds, "policy.anomaly.points", "policy.anomaly.points %d is not a number of backups from 1 (each backup alone) to 100", r.Points)
	}
	return nil
}

// Judge says why a change is abnormal, or "" when it is not. A change
// against no files (an item's first backup) never is.
func (r AnomalyRule) Judge(c Change) string {
	r = r.WithDefaults()
	if c.Files == 0 {
		return ""
	}
	touched := c.Touched() * 100 / c.Files
	incompressible := 0
	if c.Sampled > 0 {
		incompressible = int(c.Incompressible * 100 / c.Sampled)
	}
	switch {
	case c.Replaced >= r.ReplacedFiles:
		return fmt.Sprintf("%s replaced by files with the new extension %q", Plural(c.Replaced, "file"), c.NewExtension)
	case touched >= r.ChangedPercent && incompressible >= r.IncompressiblePercent:
		return fmt.Sprintf("%d%% of %s changed or replaced, and %d%% of the changed bytes sampled do not compress", touched, Plural(c.Files, "file"), incompressible)
	case c.RansomNotes > 0 && touched >= notePercent:
		return fmt.Sprintf("%s named like ransom notes appeared while %d%% of %s changed or replaced", Plural(c.RansomNotes, "file"), touched, Plural(c.Files, "file"))
	}
	return ""
}

// Anomaly is the item's first recovery point found suspect and not yet
// accepted, or nil.
func Anomaly(points []RecoveryPoint) *RecoveryPoint {
	i := slices.IndexFunc(points, func(rp RecoveryPoint) bool { return rp.Suspect != "" && rp.Accepted == "" })
	if i < 0 {
		return nil
	}
	return &points[i]
}

// JudgePoint says why rp is suspect, by its own change or that since the
// baseline, so that encryption spread over days is caught; "" when not.
func (r AnomalyRule) JudgePoint(points []RecoveryPoint, rp RecoveryPoint, since *Change) string {
	if rp.Change == nil {
		return ""
	}
	r = r.WithDefaults()
	if why := r.Judge(*rp.Change); why != "" {
		return why
	}
	b := r.baseline(points)
	if since == nil || b < 0 || b >= len(points)-1 {
		return ""
	}
	total := *since
	total.Sampled, total.Incompressible = rp.Change.Sampled, rp.Change.Incompressible
	for _, p := range points[b+1:] {
		if p.Change != nil {
			total.Sampled += p.Change.Sampled
			total.Incompressible += p.Change.Incompressible
		}
	}
	if why := r.Judge(total); why != "" {
		return fmt.Sprintf("over the last %s: %s", Plural(len(points)-b, "backup"), why)
	}
	return ""
}

// baseline is the index of the point changes add up from: Points backups
// back, or the last accepted or suspect one since; -1 for none.
func (r AnomalyRule) baseline(points []RecoveryPoint) int {
	if len(points) == 0 {
		return -1
	}
	b := max(len(points)-r.Points, 0)
	for i, p := range points {
		if p.Accepted != "" || p.Suspect != "" {
			b = max(b, i)
		}
	}
	return b
}

// Baseline is the ID of the point a new backup's change is added up from,
// or "".
func (r AnomalyRule) Baseline(points []RecoveryPoint) string {
	if b := r.WithDefaults().baseline(points); b >= 0 {
		return points[b].ID
	}
	return ""
}

// Text says a change in a line: +added ~changed -deleted, what was
// replaced, the share of the sampled changed bytes that do not compress.
func (c *Change) Text() string {
	if c == nil {
		return "-"
	}
	s := fmt.Sprintf("+%d ~%d -%d", c.Added, c.Changed, c.Deleted)
	if c.Replaced > 0 {
		s += fmt.Sprintf(" (%d to %s)", c.Replaced, c.NewExtension)
	}
	if c.Sampled > 0 {
		s += fmt.Sprintf(" %d%% incompressible", c.Incompressible*100/c.Sampled)
	}
	if c.RansomNotes > 0 {
		s += ", " + Plural(c.RansomNotes, "ransom note")
	}
	return s
}
