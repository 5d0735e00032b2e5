package labnet

// OnClose makes the lab's Close call f once, for key, before it stops the
// lab's processes and deletes its namespaces, unless RemoveOnClose(key)
// ran first. It is for harnesses built on the lab that own state outside
// it (internal/labkube's nodes: containers, cgroups, state directories),
// so that the lab's Close, including the one its signal handler runs on
// Ctrl-C, removes that state too. It fails once the lab is closed.
func (l *Lab) OnClose(key any, f func() error) error { return l.addCloser(key, f) }

// RemoveOnClose undoes OnClose(key, …).
func (l *Lab) RemoveOnClose(key any) { l.removeCloser(key) }
