package raftactor

import (
	"fmt"

	"go.uber.org/zap"
)

// raftLogger routes raft's logging into zap.
type raftLogger struct{ l *zap.SugaredLogger }

func (r raftLogger) Debug(v ...any)              { r.l.Debug(v...) }
func (r raftLogger) Debugf(f string, v ...any)   { r.l.Debugf(f, v...) }
func (r raftLogger) Error(v ...any)              { r.l.Error(v...) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Errorf(f, v...) }
func (r raftLogger) Info(v ...any)               { r.l.Info(v...) }
func (r raftLogger) Infof(f string, v ...any)    { r.l.Infof(f, v...) }
func (r raftLogger) Warning(v ...any)            { r.l.Warn(v...) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warnf(f, v...) }
func (r raftLogger) Fatal(v ...any)              { r.l.Fatal(v...) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.l.Fatalf(f, v...) }
func (r raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
