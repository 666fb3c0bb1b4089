// What Swift has no spelling for; everything is in the header, inline.
#include "CTouchLogPlatform.h"
