package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
)

// newLogger makes the process's one logger and routes klog (client-go) and
// controller-runtime's global logger to the same handler. Only main touches
// those globals.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	lr := logr.FromSlogHandler(h)
	klog.SetLogger(lr)
	ctrl.SetLogger(lr)
	return slog.New(h), nil
}
