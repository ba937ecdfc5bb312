package main

import _ "github.com/kong/go-kong/kong"
