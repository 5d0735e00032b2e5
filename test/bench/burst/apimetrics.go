package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// requestCounts is the API server's apiserver_request_total summed by
// "VERB resource[/subresource] code".
type requestCounts map[string]float64

// countDiff is one line of the difference of two requestCounts.
type countDiff struct {
	Key string
	N   float64
}

// apiRequests reads the API server's request counters from /metrics. They
// show, beside the latencies, what each allocator asked of the API server.
func apiRequests(ctx context.Context, cs kubernetes.Interface) (requestCounts, error) {
	b, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read api server metrics: %w", err)
	}
	return parseRequestCounts(string(b)), nil
}

// parseRequestCounts picks apiserver_request_total out of the Prometheus
// text format. Its label values hold no commas, quotes or braces.
func parseRequestCounts(text string) requestCounts {
	out := requestCounts{}
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		out[l["verb"]+" "+res+" "+l["code"]] += n
	}
	return out
}

// since returns what grew from before to c, largest first.
func (c requestCounts) since(before requestCounts) []countDiff {
	var out []countDiff
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out = append(out, countDiff{k, d})
		}
	}
	slices.SortFunc(out, func(a, b countDiff) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Key, b.Key)) })
	return out
}

// allocatorWrites sums the requests that write (POST, PUT, PATCH, APPLY,
// DELETE, DELETECOLLECTION) except the Service creations, the cluster-IP
// objects (ipaddresses) the API server writes for them and the Leases the
// API server renews for itself (ironlb runs without leader election): what
// is left is the allocator's doing.
func allocatorWrites(d []countDiff) float64 {
	var n float64
	for _, x := range d {
		verb, rest, _ := strings.Cut(x.Key, " ")
		res, _, _ := strings.Cut(rest, " ")
		if (verb == "POST" && res == "services") || res == "ipaddresses" || res == "leases" {
			continue
		}
		switch verb {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
			n += x.N
		}
	}
	return n
}
