package labcluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// auditPolicy logs every request but reads (get, list, watch) at level
// Metadata: who, what, when and the answer's code, not the bodies. Only the
// stage when the answer is complete is kept.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
- level: Metadata
`

// auditArgs writes the audit policy into dir and returns the API server
// flags that log to a file there, and that file's path.
func auditArgs(dir string) (map[string]string, string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, "", fmt.Errorf("audit policy: %w", err)
	}
	log := filepath.Join(dir, "audit.log")
	return map[string]string{
		"audit-policy-file": policy,
		"audit-log-path":    log,
		"audit-log-format":  "json",
	}, log, nil
}

// AuditEvent is one request in the API server's audit log: the fields of
// audit.k8s.io/v1 Event that Metadata level fills and tests read.
type AuditEvent struct {
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	// ImpersonatedUser is set when User acted as another (a kubeconfig's
	// "as").
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	UserAgent  string `json:"userAgent"`
	ObjectRef  struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	// Received is when the API server received the request, Completed when
	// it answered.
	Received  time.Time `json:"requestReceivedTimestamp"`
	Completed time.Time `json:"stageTimestamp"`
}

// Who is the user the request acted as: the impersonated one, if any.
func (e AuditEvent) Who() string {
	if e.ImpersonatedUser != nil {
		return e.ImpersonatedUser.Username
	}
	return e.User.Username
}

// Succeeded reports whether the API server answered 2xx.
func (e AuditEvent) Succeeded() bool {
	return e.ResponseStatus.Code >= 200 && e.ResponseStatus.Code < 300
}

// AuditEvents reads the API server's audit log (Options.AuditLog): every
// request but reads, in the order the API server answered them. A last
// line still being written is left out.
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	if c.auditLog == "" {
		return nil, errors.New("the cluster keeps no audit log: start it with Options.AuditLog")
	}
	f, err := os.Open(c.auditLog)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var bad error // a line that did not parse: only the last one may be cut short
	for sc.Scan() {
		if bad != nil {
			return nil, bad
		}
		var e AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = fmt.Errorf("audit log line %d: %w", len(out)+1, err)
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}
