package labnet

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// openLabs is the package's one piece of mutable global state, and it has to
// be: signal delivery is process-wide, so the handler that cleans up on
// Ctrl-C must find every open lab of the process. Labs register in New and
// unregister in Close; the handler runs only while at least one lab is open,
// so a process without labs keeps the default signal behaviour.
var openLabs struct {
	mu   sync.Mutex
	labs map[*Lab]bool
	ch   chan os.Signal
}

// registerSignals makes a SIGINT or SIGTERM close l.
func registerSignals(l *Lab) {
	openLabs.mu.Lock()
	defer openLabs.mu.Unlock()
	if openLabs.labs == nil {
		openLabs.labs = map[*Lab]bool{}
	}
	openLabs.labs[l] = true
	if openLabs.ch == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		openLabs.ch = ch
		go handleSignals(ch)
	}
}

// unregisterSignals forgets l, and stops handling signals when no lab is
// left.
func unregisterSignals(l *Lab) {
	openLabs.mu.Lock()
	defer openLabs.mu.Unlock()
	delete(openLabs.labs, l)
	if len(openLabs.labs) == 0 && openLabs.ch != nil {
		signal.Stop(openLabs.ch)
		close(openLabs.ch) // no delivery after Stop returns; ends handleSignals
		openLabs.ch = nil
	}
}

// handleSignals waits for a signal on ch, closes every open lab, and
// re-raises the signal with its default action so the process still dies
// the way the sender asked (exit status, shell reporting).
func handleSignals(ch chan os.Signal) {
	sig, ok := <-ch
	if !ok {
		return
	}
	openLabs.mu.Lock()
	labs := make([]*Lab, 0, len(openLabs.labs))
	for l := range openLabs.labs {
		labs = append(labs, l)
	}
	openLabs.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range labs {
		wg.Go(func() { l.Close() })
	}
	wg.Wait()

	s := sig.(syscall.Signal)
	signal.Reset(s)
	syscall.Kill(os.Getpid(), s)
}
