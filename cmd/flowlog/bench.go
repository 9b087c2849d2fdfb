package main

import (
	"errors"
	"log/slog"
)

type benchCmd struct{}

func (c *benchCmd) Run(log *slog.Logger) error { return errors.New("not yet") }
