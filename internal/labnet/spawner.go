package labnet

import (
	"errors"
	"os/exec"
	"runtime"
)

// errClosed is returned by operations on a lab after Close.
var errClosed = errors.New("lab is closed")

// spawner starts child processes from one OS thread that stays alive, and
// locked to one goroutine, for the lab's lifetime. Linux sends a child its
// parent-death signal (which the lab sets, so children die with a crashed
// test) when the *thread* that forked it exits, not the process; forked from
// an arbitrary Go thread, a child could be killed whenever the runtime
// retires that thread.
type spawner struct {
	reqs chan func()
	quit chan struct{}
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	runtime.LockOSThread()
	// Never unlocked: when the loop ends, the goroutine exits locked, Go
	// terminates the thread, and any child still alive receives its
	// parent-death signal, a last guarantee that nothing outlives the lab.
	defer close(s.done)
	for {
		select {
		case f := <-s.reqs:
			f()
		case <-s.quit:
			return
		}
	}
}

// start calls cmd.Start on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	select {
	case s.reqs <- func() { errc <- cmd.Start() }:
		return <-errc
	case <-s.done:
		return errClosed
	}
}

// close ends the spawner's thread; call it after every child has exited.
func (s *spawner) close() {
	close(s.quit)
	<-s.done
}
