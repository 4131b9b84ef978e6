package natsnode

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logAdapter sends the embedded server's log to slog. Its notices (a
// startup banner, leader elections) go to debug: zbroker logs what
// matters itself. A fatal error is kept, as the server does not exit on it
// when embedded, so Start can report why the server never got ready.
type logAdapter struct {
	log *slog.Logger
	mu  sync.Mutex
	err string
}

func (l *logAdapter) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Tracef(string, ...any)           {}

func (l *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	if l.err == "" {
		l.err = msg
	}
	l.mu.Unlock()
}

func (l *logAdapter) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.err)
}
