package main

// The command speaks every provider herald ships.
import (
	_ "github.com/seed06bc8277/herald/providers/gcppubsub"
	_ "github.com/seed06bc8277/herald/providers/servicebus"
	_ "github.com/seed06bc8277/herald/providers/snssqs"
)
