# rules for client/ (included by the top Makefile.am)
