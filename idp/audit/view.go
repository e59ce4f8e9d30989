package audit

import (
	"slices"
	"time"

	"github.com/keyward/keyward/storage"
)

// View is one audit row as the admin API (GET /admin/v1/audit) and
// `keyward audit list --output json` show it: the one shape of both.
type View struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	Type      string    `json:"type"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
}

// Views turns stored rows into their Views, times in UTC.
func Views(evs []storage.AuditEvent) []View {
	out := make([]View, len(evs))
	for i, e := range evs {
		out[i] = View{e.ID, e.At.UTC(), e.Type, e.Outcome, e.Reason, e.Actor, e.Subject, e.ClientID, e.IP, e.UserAgent, e.RequestID}
	}
	return out
}

// IsType reports whether s names an event type (Types): the check of the
// type filter of the admin API and the CLI.
func IsType(s string) bool { return slices.Contains(Types, Type(s)) }
