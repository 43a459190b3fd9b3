// Placeholder entry point until the command lands.
#include <iostream>
int main() { std::cout << "vditkit\n"; }
