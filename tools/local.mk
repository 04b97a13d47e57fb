# rules for tools/ (included by the top Makefile.am)
