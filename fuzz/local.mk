# rules for fuzz/ (included by the top Makefile.am)
