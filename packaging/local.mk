# rules for packaging/ (included by the top Makefile.am)
