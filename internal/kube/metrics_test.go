package kube

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestMetricsAuthDecide checks metricsAuth's answers against a fake API
// server: who is asked what, and which answers are reused. (The real API
// server's answers: test/install TestMetricsNeedAuthorization.)
func TestMetricsAuthDecide(t *testing.T) {
	cs := fake.NewClientset()
	var reviews int
	var failing bool
	// Tokens: "reader" may get /metrics, "other" is someone else, any
	// other token is unknown.
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		if failing {
			return true, nil, errors.New("API server away")
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		switch tr.Spec.Token {
		case "reader", "other":
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: tr.Spec.Token, Groups: []string{"system:authenticated"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}},
			}}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		nr := sar.Spec.NonResourceAttributes
		if nr == nil || sar.Spec.Extra["k"][0] != "v" {
			t.Errorf("review %+v: want the non-resource URL and the user's extra", sar.Spec)
		}
		sar.Status.Allowed = sar.Spec.User == "reader" && nr != nil && nr.Path == "/metrics" && nr.Verb == "get"
		return true, sar, nil
	})
	a := &metricsAuth{tokens: cs.AuthenticationV1().TokenReviews(), reviews: cs.AuthorizationV1().SubjectAccessReviews(), answers: map[metricsKey]metricsAnswer{}}
	req := func(method, path, auth string) *http.Request {
		r := httptest.NewRequest(method, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}

	tests := []struct {
		name        string
		r           *http.Request
		want        int
		wantReviews int // token reviews made, in all, after this request
	}{
		{"no header", req("GET", "/metrics", ""), http.StatusUnauthorized, 0},
		{"not a bearer token", req("GET", "/metrics", "Basic cmVhZGVyOng="), http.StatusUnauthorized, 0},
		{"empty bearer token", req("GET", "/metrics", "Bearer "), http.StatusUnauthorized, 0},
		{"unknown token", req("GET", "/metrics", "Bearer nope"), http.StatusUnauthorized, 1},
		{"reader", req("GET", "/metrics", "Bearer reader"), http.StatusOK, 2},
		{"reader again, remembered", req("GET", "/metrics", "Bearer reader"), http.StatusOK, 2},
		{"reader, another path", req("GET", "/debug", "Bearer reader"), http.StatusForbidden, 3},
		{"reader, another verb", req("POST", "/metrics", "Bearer reader"), http.StatusForbidden, 4},
		{"someone else", req("GET", "/metrics", "Bearer other"), http.StatusForbidden, 5},
		{"someone else again, remembered", req("GET", "/metrics", "Bearer other"), http.StatusForbidden, 5},
	}
	for _, tt := range tests {
		got, err := a.decide(tt.r)
		if err != nil || got != tt.want || reviews != tt.wantReviews {
			t.Errorf("%s: %d, %v after %d token reviews; want %d, nil after %d", tt.name, got, err, reviews, tt.want, tt.wantReviews)
		}
	}

	// An API server that cannot answer: 500, and not remembered.
	failing = true
	for range 2 {
		if got, err := a.decide(req("GET", "/metrics", "Bearer new")); got != http.StatusInternalServerError || err == nil {
			t.Errorf("API server away: %d, %v; want 500 and its error", got, err)
		}
	}
	if reviews != 7 {
		t.Errorf("%d token reviews, want 7: a failure is asked again", reviews)
	}
}
