# rules for daemon/ (included by the top Makefile.am)
